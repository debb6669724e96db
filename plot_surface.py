"""Loss surfaces along random filter-normalized (or target) directions: `mpirun -n N python plot_surface.py ...`."""
import sys

from landscape.job.stops import install_stop_signals

if __name__ == "__main__":
    install_stop_signals()  # before torch and h5py load (seconds): a stop meanwhile ends the run once they have
    from landscape.cli.surface import main
    sys.exit(main())
