"""Hessian eigenvalue maps over a grid: `mpirun -n N python plot_hessian_eig.py ...`."""
import sys

from landscape.job.stops import install_stop_signals

if __name__ == "__main__":
    install_stop_signals()  # before torch and h5py load (seconds): a stop meanwhile ends the run once they have
    from landscape.cli.hessian import main
    sys.exit(main())
