"""`python -m model.generate`: one answer from the shell (model/generation/cli.py)."""

import sys

from model.generation.cli import main

if __name__ == "__main__":
    sys.exit(main())
