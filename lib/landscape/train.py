"""`python -m landscape.train`: the trainer's command line lives in landscape/cli/train.py, its pieces in landscape/training/."""
import sys

from .cli.train import main

if __name__ == "__main__":
    sys.exit(main())
