"""`python -m model.evaluate`: the evaluation harness and audit (model/evaluation/cli.py)."""

import sys

from model.evaluation.cli import main

if __name__ == "__main__":
    sys.exit(main())
