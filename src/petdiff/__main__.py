"""`python -m petdiff` runs the command-line tool."""

import sys

from petdiff.cli import main

sys.exit(main())
