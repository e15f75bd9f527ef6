"""`python -m ctiserver.sandbox up|down|status|restart|build`."""

import sys

from .cli import main

sys.exit(main())
