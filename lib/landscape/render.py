"""`python -m landscape.render FILE`: plots, the interactive page, ParaView files and the live view of a
results file. The command line lives in landscape/cli/render.py, the drawing in landscape/plot/."""
import sys

from .cli.render import main

if __name__ == "__main__":
    sys.exit(main())
