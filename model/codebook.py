"""`python -m model.codebook`: fit a checkpoint's sketch codebook (model/training/fit_codebook.py)."""

import sys

from model.training.fit_codebook import main

if __name__ == "__main__":
    sys.exit(main())
