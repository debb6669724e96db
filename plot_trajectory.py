"""Optimizer trajectory on its top-2 PCA directions, optionally over the loss surface: `[mpirun -n N] python plot_trajectory.py ...`."""
import sys

from landscape.job.stops import install_stop_signals

if __name__ == "__main__":
    install_stop_signals()  # before torch and h5py load (seconds): a stop meanwhile ends the run once they have
    from landscape.cli.trajectory import main
    sys.exit(main())
