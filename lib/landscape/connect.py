"""`python -m landscape.connect line ...`: loss and barriers between two checkpoints (with --align, also after
aligning their units); the command line lives in landscape/cli/connect.py, the work in landscape.interpolate
(api/connect.py). `... curve ...`: a fitted curve between them (cli/curve.py; landscape.fit_curve,
api/curves.py). `... matrix ...`: the barriers between many checkpoints (cli/connect_matrix.py;
landscape.barrier_matrix)."""
import sys

from .cli.connect import main

if __name__ == "__main__":
    sys.exit(main())
