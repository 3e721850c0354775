"""Start-up seeding: queues from the configuration file, one admin and, in demo mode, the demo agents.

Passwords never live in code, in the YAML file or in the log: the admin's comes from
``HANDOFF_ADMIN_PASSWORD``, the demo agents' from ``SUPPORTBOT_DEMO_AGENT_PASSWORD``; when unset, a
random password is generated for an account being created and written to
``DATA_DIR/initial-credentials.txt`` (mode 0600, readable by the gateway's user only); the log
says only where that file is. The demo agents (alice, wei, olga) exist only with
``SUPPORTBOT_DEMO=true`` (``make run`` sets it), never in a production deployment.
Existing rows are left alone, so admins' changes through the API survive restarts.
"""

from __future__ import annotations

import logging
import secrets
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from handoff.auth import hash_password
from handoff.config import HandoffConfig
from handoff.models import Agent, HandoffQueue
from settings import Settings
from storage.db import transaction
from storage.secrets import private_file

log = logging.getLogger(__name__)

CREDENTIALS_FILE = "initial-credentials.txt"


def seed_handoff(sessions: sessionmaker[Session], settings: Settings, config: HandoffConfig,
                 *, with_demo_agents: bool | None = None) -> dict[str, str]:
    """Create what is missing; returns {username: generated password} for accounts created with a random one.

    ``with_demo_agents`` None: the demo agents are created when ``settings.demo`` is on.
    """
    from handoff.service import utcnow

    if with_demo_agents is None:
        with_demo_agents = settings.demo
    now = utcnow()
    generated: dict[str, str] = {}
    with transaction(sessions) as db:
        for q in config.queues:
            if db.get(HandoffQueue, q.name) is None:
                db.add(HandoffQueue(name=q.name, topic=q.topic, language=q.language, timezone=q.timezone,
                                    hours=q.hours, avg_handle_minutes=q.avg_handle_minutes, created_at=now))
        accounts = [(settings.handoff_admin_username, "Administrator", [q.name for q in config.queues], 5, "admin",
                     settings.handoff_admin_password.get_secret_value())]
        if with_demo_agents:
            demo_password = settings.handoff_demo_agent_password.get_secret_value()
            accounts += [(a.username, a.display_name, a.queues, a.capacity, a.role, demo_password) for a in config.demo_agents]
        for username, display, queues, capacity, role, password in accounts:
            if db.scalar(select(Agent.id).where(Agent.username == username)) is not None:
                continue
            if not password:
                password = generated[username] = secrets.token_urlsafe(12)
            db.add(Agent(username=username, display_name=display, password_hash=hash_password(password), role=role,
                         queues=list(queues), capacity=capacity, status="offline", active=True, created_at=now))
    if generated:
        path = write_credentials(settings.data_dir, generated, now.isoformat(timespec="seconds"))
        # Only where to look: a password in the log would be in every log shipper and backup.
        log.warning("handoff accounts created with random passwords; read them in %s (mode 0600), then change "
                    "them (POST /api/v1/agent/password) and delete the file", path,
                    extra={"usernames": sorted(generated), "credentials_file": str(path)})
    return generated


def write_credentials(data_dir: Path, generated: dict[str, str], when: str) -> Path:
    """Add the accounts to DATA_DIR/initial-credentials.txt (0600), keeping what an earlier start wrote."""
    path = data_dir / CREDENTIALS_FILE
    before = path.read_bytes() if path.exists() else b""
    lines = [f"# handoff accounts created {when} with random passwords; change them, then delete this file"]
    lines += [f"{username}: {password}" for username, password in sorted(generated.items())]
    private_file(path, before + ("\n".join(lines) + "\n").encode())
    return path
