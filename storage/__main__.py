"""``python -m storage migrate``: bring the database of ``DATABASE_URL`` (default: the SQLite file
under ``DATA_DIR``) to the latest schema, as its own deployment step.

The gateway also migrates on start, under the same PostgreSQL advisory lock, so running this first
is optional; it lets a deployment fail early (and once) on a migration instead of in every replica.
"""

from __future__ import annotations

import argparse
import sys

from sqlalchemy.engine import make_url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m storage", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    migrate = commands.add_parser("migrate", help="run the database migrations up to the latest revision")
    migrate.add_argument("--url", help="a SQLAlchemy URL instead of the settings' DATABASE_URL")
    args = parser.parse_args(argv)

    from storage.db import heads, upgrade

    if args.url:
        url = args.url
    else:
        from settings import get_settings

        url = get_settings().sqlalchemy_url
    shown = make_url(url).render_as_string(hide_password=True)
    try:
        upgrade(url)
    except Exception as err:  # a clear line, not a traceback, for a deployment's log
        print(f"migration of {shown} failed: {type(err).__name__}: {err}", file=sys.stderr)
        return 1
    print(f"{shown} is at {', '.join(sorted(heads()))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
