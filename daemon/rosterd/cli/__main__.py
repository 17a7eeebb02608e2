"""Lets `python -m rosterd.cli` run rosterctl."""

import sys

from rosterd.cli import main

sys.exit(main())
