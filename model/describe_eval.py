"""`python -m model.describe_eval`: the stage-0 check (model/evaluation/describe.py)."""

import sys

from model.evaluation.describe import main

if __name__ == "__main__":
    sys.exit(main())
