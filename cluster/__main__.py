"""``python -m cluster run --gateways N --rasa M`` (cluster/cli.py)."""

import sys

from cluster.cli import main

sys.exit(main())
