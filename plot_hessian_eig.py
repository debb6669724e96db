"""Hessian eigenvalue maps over a grid: `mpirun -n N python plot_hessian_eig.py ...`."""
import sys

from landscape.cli.hessian import main

if __name__ == "__main__":
    sys.exit(main())
