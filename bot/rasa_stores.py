"""Rasa's tracker store and lock store for several Rasa servers (issue 16), from the gateway's settings.

- ``DATABASE_URL`` on PostgreSQL: Rasa's ``SQLTrackerStore`` on the same server and database, in a
  PostgreSQL schema of its own (``rasa``, or ``<schema>_rasa`` when the URL's ``options`` put the
  gateway in schema ``<schema>``). Its ``events`` table then cannot meet ours, and the gateway's
  Alembic migrations never see it. Rasa does not create a schema (only databases, which a managed
  PostgreSQL often does not let us do), so ``prepare()`` creates it before Rasa starts; Rasa reaches it
  through its ``POSTGRESQL_SCHEMA`` variable. Every Rasa server then reads the same dialogue state.
- ``REDIS_URL`` set: Rasa's ``RedisLockStore`` (``lock_store: type: redis``), so that Rasa servers
  queue the messages of one conversation instead of each using its own in-memory lock. The gateway
  already sends one conversation's turns one at a time (storage/coordination.py); the Redis lock
  store covers anything else that reaches Rasa's API.
- Neither: ``bot/endpoints.yml`` as it is (a SQLite tracker file, in-memory locks): one machine, no set-up.

Secrets stay out of the rendered file and of Rasa's command line: the file names
``${RASA_TRACKER_PASSWORD}`` and ``${RASA_LOCK_STORE_PASSWORD}``, which ``env()`` gives Rasa's environment.
``python -m bot.rasa_stores endpoints --out FILE`` renders it (and prepares the schema) for Rasa servers
started by something else than the gateway (``RASA_URL``): start them with ``--endpoints FILE`` and the
variables of ``RasaStores.env()`` (the command names them), or with ``bot.rasa_process.RasaSupervisor``.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import yaml
from sqlalchemy import text
from sqlalchemy.engine import URL, make_url

from storage.coordination import MIGRATIONS_LOCK, is_postgres, pg_session_lock, sync_lock_engine

__all__ = ["DEFAULT_ENDPOINTS", "RasaStores", "lock_store_config", "tracker_schema"]

DEFAULT_ENDPOINTS = Path(__file__).resolve().parent / "endpoints.yml"
LOCK_KEY_PREFIX = "supportbot"  # Rasa wants it alphanumeric; its keys are "supportbot:lock:<sender>"
# Rasa's own default pool is 50 connections (+100 overflow) per server; it needs one per turn in progress.
RASA_POOL = {"SQL_POOL_SIZE": "5", "SQL_MAX_OVERFLOW": "10"}
_SEARCH_PATH = re.compile(r"-c\s*search_path\s*=\s*([^\s,]+)")
_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def tracker_schema(url: URL) -> str:
    """``rasa``, or ``<schema>_rasa`` when the URL's ``options`` set the gateway's search_path to ``<schema>``."""
    options = url.query.get("options")
    found = _SEARCH_PATH.search(options if isinstance(options, str) else " ".join(options or ()))
    schema = f"{found.group(1).strip(chr(34))}_rasa"[:63] if found else "rasa"
    if not _SCHEMA_NAME.match(schema):
        raise ValueError(f"cannot name Rasa's tracker schema after the search_path in DATABASE_URL: {schema!r}")
    return schema


def lock_store_config(redis_url: str) -> tuple[dict[str, Any], str]:
    """Rasa's ``lock_store`` section for ``redis_url``, and the password it needs ('' for none)."""
    parts = urlsplit(redis_url)
    if parts.scheme not in ("redis", "rediss"):
        raise ValueError(f"REDIS_URL must start with redis:// or rediss:// for Rasa's lock store, not {parts.scheme}://")
    if not parts.hostname:
        raise ValueError("REDIS_URL names no host")
    path = parts.path.strip("/")
    if path and not path.isdigit():
        raise ValueError(f"REDIS_URL's database must be a number, not {path!r}")
    config: dict[str, Any] = {"type": "redis", "url": parts.hostname, "port": parts.port or 6379,
                              "db": int(path or 0), "key_prefix": LOCK_KEY_PREFIX}
    if parts.scheme == "rediss":
        config["use_ssl"] = True
    if parts.username:
        config["username"] = unquote(parts.username)
    password = unquote(parts.password or "")
    if password:
        config["password"] = "${RASA_LOCK_STORE_PASSWORD}"
    return config, password


@dataclass(frozen=True, repr=False)  # no repr: the URLs may carry passwords
class RasaStores:
    database_url: str = ""  # the gateway's DATABASE_URL; PostgreSQL → SQL tracker store there
    redis_url: str = ""  # REDIS_URL → Redis lock store

    @classmethod
    def from_settings(cls, settings: Any) -> RasaStores:
        return cls(settings.sqlalchemy_url, settings.redis_url)

    @property
    def shared_tracker(self) -> bool:
        return bool(self.database_url) and is_postgres(self.database_url)

    @property
    def default(self) -> bool:
        """Nothing shared configured: ``bot/endpoints.yml`` as it is."""
        return not self.shared_tracker and not self.redis_url

    def tracker_store_config(self) -> dict[str, Any]:
        url = make_url(self.database_url)
        config: dict[str, Any] = {"type": "SQL", "dialect": "postgresql", "url": url.host or "localhost",
                                  "port": url.port or 5432, "db": url.database or "postgres"}
        if url.username:
            config["username"] = url.username
        if url.password:
            config["password"] = "${RASA_TRACKER_PASSWORD}"
        query = {k: v for k, v in url.query.items() if k != "options" and isinstance(v, str)}
        if query:  # e.g. sslmode=require
            config["query"] = query
        return config

    def endpoints(self, base: Path = DEFAULT_ENDPOINTS) -> dict[str, Any]:
        config = yaml.safe_load(base.read_text(encoding="utf-8"))
        if self.shared_tracker:
            config["tracker_store"] = self.tracker_store_config()
        if self.redis_url:
            config["lock_store"] = lock_store_config(self.redis_url)[0]
        return config

    def env(self) -> dict[str, str]:
        """What Rasa's environment needs for ``endpoints()``: the schema, pool sizes and passwords."""
        env: dict[str, str] = {}
        if self.shared_tracker:
            url = make_url(self.database_url)
            env.update(RASA_POOL, POSTGRESQL_SCHEMA=tracker_schema(url))
            if url.password:
                env["RASA_TRACKER_PASSWORD"] = str(url.password)
        if self.redis_url:
            password = lock_store_config(self.redis_url)[1]
            if password:
                env["RASA_LOCK_STORE_PASSWORD"] = password
        return env

    def prepare(self) -> None:
        """Create Rasa's tracker schema if it is missing (under the migrations' advisory lock, so two
        gateways starting together do not race). Rasa creates its table in it on start."""
        if not self.shared_tracker:
            return
        schema = tracker_schema(make_url(self.database_url))
        engine = sync_lock_engine(self.database_url)
        try:
            with engine.connect() as conn, pg_session_lock(conn, MIGRATIONS_LOCK, f"rasa:{schema}"):
                conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
                conn.commit()
        finally:
            engine.dispose()

    def write(self, path: Path, base: Path = DEFAULT_ENDPOINTS) -> Path:
        """The endpoints file for these stores (``base`` itself when nothing is shared)."""
        if self.default:
            return base
        path.parent.mkdir(parents=True, exist_ok=True)
        header = "# Rendered by bot/rasa_stores.py from bot/endpoints.yml and the gateway's settings; do not edit.\n"
        path.write_text(header + yaml.safe_dump(self.endpoints(base), sort_keys=False, allow_unicode=True),
                        encoding="utf-8")
        return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot.rasa_stores",
                                     description="Rasa's endpoints for the tracker and lock stores of these settings")
    parser.add_argument("command", choices=["endpoints"], help="prepare the tracker schema and write the file")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    from settings import get_settings

    stores = RasaStores.from_settings(get_settings())
    try:
        stores.prepare()
        print(stores.write(args.out))
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if stores.env():  # names only: the values are secrets or come from the same settings
        print(f"Rasa's environment also needs: {', '.join(sorted(stores.env()))} (RasaStores.env())", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
