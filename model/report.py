"""`python -m model.report`: the command's old name, kept; the report itself is pipeline/report.py."""

import sys

from pipeline.report import main

if __name__ == "__main__":
    sys.exit(main())
