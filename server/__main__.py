"""`python -m server` runs the `segment-audiences` command from a checkout."""

import sys

from server.cli import main

sys.exit(main())
