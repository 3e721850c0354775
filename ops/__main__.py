"""``python -m ops --help``: see ops/cli.py."""

from ops.cli import run

run()
