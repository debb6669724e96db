"""Optimizer trajectory on its top-2 PCA directions, optionally over the loss surface: `[mpirun -n N] python plot_trajectory.py ...`."""
import sys

from landscape.cli.trajectory import main

if __name__ == "__main__":
    sys.exit(main())
