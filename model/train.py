"""`python -m model.train`: train one stage (model/training/cli.py)."""

import sys

from model.training.cli import main

if __name__ == "__main__":
    sys.exit(main())
