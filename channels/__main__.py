"""``python -m channels …``: see channels/cli.py."""

from channels.cli import app

app()
