"""`python -m model.demo_pipeline`: the command's old name, kept; the pipeline itself is pipeline/demo.py."""

import sys

from pipeline.demo import main

if __name__ == "__main__":
    sys.exit(main())
