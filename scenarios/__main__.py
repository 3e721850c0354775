"""``python -m scenarios test-conversations ...`` (see scenarios/cli.py)."""

import sys

from scenarios.cli import main

sys.exit(main())
