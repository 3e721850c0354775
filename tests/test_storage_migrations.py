"""The Alembic baseline: a fresh database gets every model's table exactly; a database the pre-release
revision chain made is moved onto the baseline without losing a row; one the chain made only in part
is refused with a message instead of being half-upgraded."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import text

import bot.actions.runs  # noqa: F401  (every package's tables, as storage/migrations/env.py imports them)
import channels.models  # noqa: F401
import conversations.models  # noqa: F401
import handoff.models  # noqa: F401
import ops.models  # noqa: F401
import storage.leases  # noqa: F401
import store.models  # noqa: F401
from storage.db import BASELINE, MIGRATIONS_DIR, SQUASHED_HEADS, Base, heads, make_engine, upgrade
from tests.store_fixtures import sqlite_url


def _stamped(url: str) -> set[str]:
    engine = make_engine(url)
    with engine.connect() as conn:
        rows = {row[0] for row in conn.execute(text("SELECT version_num FROM alembic_version"))}
    engine.dispose()
    return rows


def _stamp(url: str, revisions: set[str]) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM alembic_version"))
        for revision in sorted(revisions):
            conn.execute(text("INSERT INTO alembic_version (version_num) VALUES (:v)"), {"v": revision})
    engine.dispose()


def _cursor_rows(url: str) -> list[tuple[str, int]]:
    engine = make_engine(url)
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(text("SELECT name, last_id FROM ops_cursors ORDER BY name"))]
    engine.dispose()
    return rows


@pytest.fixture(name="url")
def fixture_url(tmp_path: Path) -> str:
    url = sqlite_url(tmp_path)
    upgrade(url)
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO ops_cursors (name, last_id) VALUES ('kept', 41)"))
    engine.dispose()
    return url


def test_a_new_database_has_every_model_table_as_declared(url: str) -> None:
    assert _stamped(url) == heads()
    engine = make_engine(url)
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
    engine.dispose()
    assert diffs == []


def _back_to_baseline(url: str) -> None:
    """Undo the revisions after the baseline: the schema the pre-release chain made."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url)
    command.downgrade(cfg, BASELINE)


def test_a_database_at_the_squashed_heads_is_restamped_and_keeps_its_rows(url: str) -> None:
    _back_to_baseline(url)
    _stamp(url, set(SQUASHED_HEADS))
    upgrade(url)
    assert _stamped(url) == heads()
    assert _cursor_rows(url) == [("kept", 41)]
    upgrade(url)  # and again: nothing left to do
    assert _stamped(url) == heads()


def test_a_database_at_part_of_the_old_chain_is_refused_untouched(url: str) -> None:
    partial = {"0004_handoff", "0005_channels", "0007_verification_failures", "0009_delivery"}
    _stamp(url, partial)
    with pytest.raises(RuntimeError, match="pre-release build .*0009_delivery.*start a new database"):
        upgrade(url)
    assert _stamped(url) == partial
    assert _cursor_rows(url) == [("kept", 41)]
