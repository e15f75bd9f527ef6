"""`python -m ctiserver ...`: the same command line as the `ctiserver` script."""

import sys

from .app.cli import main

sys.exit(main())
