"""Start-up seeding: queues from the configuration file, one admin and the demo agents.

Passwords never live in code or in the YAML file: the admin's comes from
``HANDOFF_ADMIN_PASSWORD``, the demo agents' from ``SUPPORTBOT_DEMO_AGENT_PASSWORD``; when unset, a
random password is generated for an account being created and written once to the log.
Existing rows are left alone, so admins' changes through the API survive restarts.
"""

from __future__ import annotations

import logging
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from handoff.auth import hash_password
from handoff.config import HandoffConfig
from handoff.models import Agent, HandoffQueue
from settings import Settings
from storage.db import transaction

log = logging.getLogger(__name__)


def seed_handoff(sessions: sessionmaker[Session], settings: Settings, config: HandoffConfig,
                 *, with_demo_agents: bool = True) -> dict[str, str]:
    """Create what is missing; returns {username: generated password} for accounts created with a random one."""
    from handoff.service import utcnow

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
    for username, password in generated.items():
        # Shown once, so that `make run` can be tried without configuring anything; set the
        # environment variables to choose them instead.
        log.warning("handoff account created with a random password", extra={"username": username, "password": password})
    return generated
