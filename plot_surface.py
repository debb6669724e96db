"""Loss surfaces along random filter-normalized (or target) directions: `mpirun -n N python plot_surface.py ...`."""
import sys

from landscape.cli.surface import main

if __name__ == "__main__":
    sys.exit(main())
