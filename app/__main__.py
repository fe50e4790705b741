"""`python -m app`: see app/main.py."""

import sys

from app.main import main

sys.exit(main())
