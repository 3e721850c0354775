"""Agent accounts and sessions (database side of sign-in, presence and admin)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from handoff.auth import MIN_PASSWORD_CHARS, hash_password, new_session_token, token_hash, verify_password
from handoff.config import LANGUAGES, _hours, _timezone
from handoff.models import Agent, AgentSession, AuditEntry, HandoffQueue
from handoff.service import AgentIdentity, HandoffError
from storage.db import transaction

SEEN_WRITE_EVERY_S = 20  # presence is refreshed at most this often per agent (a write per API call is waste)


def identity(a: Agent) -> AgentIdentity:
    return AgentIdentity(a.id, a.username, a.display_name, a.role, tuple(a.queues or []))


def agent_view(a: Agent) -> dict[str, Any]:
    return {"id": a.id, "username": a.username, "display_name": a.display_name, "role": a.role,
            "queues": list(a.queues or []), "capacity": a.capacity, "status": a.status, "active": a.active,
            "last_seen_at": a.last_seen_at.isoformat() if a.last_seen_at else None}


class Accounts:
    def __init__(self, sessions: sessionmaker[Session], session_hours: float, clock: Any) -> None:
        self._sessions = sessions
        self.session_hours = session_hours
        self.clock = clock

    def login(self, username: str, password: str) -> tuple[str, datetime, dict[str, Any]] | None:
        """(token, expiry, agent) or None for a wrong username/password (same time either way)."""
        with transaction(self._sessions) as db:
            agent = db.scalar(select(Agent).where(Agent.username == username, Agent.active.is_(True)))
            if not verify_password(agent.password_hash if agent else None, password) or agent is None:
                return None
            now = self.clock()
            token, digest = new_session_token()
            expires = now + timedelta(hours=self.session_hours)
            db.execute(delete(AgentSession).where(AgentSession.agent_id == agent.id, AgentSession.expires_at < now))
            db.add(AgentSession(token_hash=digest, agent_id=agent.id, created_at=now, expires_at=expires))
            agent.status, agent.last_seen_at = "online", now
            db.add(AuditEntry(actor=agent.username, action="login", ticket_id=None, detail={}, created_at=now))
            return token, expires, agent_view(agent)

    def authenticate(self, token: str | None) -> AgentIdentity | None:
        if not token:
            return None
        now = self.clock()
        with transaction(self._sessions) as db:
            sess = db.get(AgentSession, token_hash(token))
            if sess is None or sess.expires_at <= now:
                return None
            agent = db.get_one(Agent, sess.agent_id)
            if not agent.active:
                return None
            if agent.last_seen_at is None or (now - agent.last_seen_at).total_seconds() > SEEN_WRITE_EVERY_S:
                agent.last_seen_at = now
            return identity(agent)

    def touch(self, agent_id: int) -> None:
        with transaction(self._sessions) as db:
            agent = db.get_one(Agent, agent_id)
            agent.last_seen_at = self.clock()
            if agent.status == "offline":
                agent.status = "online"

    def logout(self, token: str, agent: AgentIdentity) -> None:
        with transaction(self._sessions) as db:
            db.execute(delete(AgentSession).where(AgentSession.token_hash == token_hash(token)))
            db.get_one(Agent, agent.id).status = "offline"
            db.add(AuditEntry(actor=agent.username, action="logout", ticket_id=None, detail={}, created_at=self.clock()))

    def login_failed(self, username: str, address: str, locked: list[str]) -> None:
        """Audit a failed sign-in (the attempted username, never the password) and any lockout it caused."""
        now = self.clock()
        with transaction(self._sessions) as db:
            db.add(AuditEntry(actor=username[:64], action="login_failed", ticket_id=None,
                              detail={"address": address[:64]}, created_at=now))
            for scope in locked:
                db.add(AuditEntry(actor=username[:64], action="login_locked", ticket_id=None,
                                  detail={"address": address[:64], "scope": scope}, created_at=now))

    # --- own account ------------------------------------------------------------------------
    def change_password(self, agent: AgentIdentity, token: str, current: str, new: str) -> bool:
        """Set a new password when ``current`` is right (False otherwise); signs out every other session."""
        if len(new) < MIN_PASSWORD_CHARS:
            raise HandoffError(422, f"password must have at least {MIN_PASSWORD_CHARS} characters")
        with transaction(self._sessions) as db:
            a = db.get_one(Agent, agent.id)
            now = self.clock()
            if not verify_password(a.password_hash, current):
                db.add(AuditEntry(actor=agent.username, action="password_change_failed", ticket_id=None, detail={},
                                  created_at=now))
                return False
            if verify_password(a.password_hash, new):
                raise HandoffError(422, "the new password must differ from the current one")
            a.password_hash = hash_password(new)
            revoked = int(db.execute(delete(AgentSession).where(AgentSession.agent_id == agent.id,
                                                                AgentSession.token_hash != token_hash(token))).rowcount or 0)
            db.add(AuditEntry(actor=agent.username, action="password_change", ticket_id=None,
                              detail={"sessions_revoked": revoked}, created_at=now))
            return True

    def revoke_sessions(self, actor: AgentIdentity, username: str | None = None) -> int:
        """Sign an agent out everywhere: ``username`` None is the actor themselves; another agent needs an admin."""
        with transaction(self._sessions) as db:
            target = db.get_one(Agent, actor.id) if username is None else self._agent(db, actor, username)
            revoked = self._revoke(db, target)
            db.add(AuditEntry(actor=actor.username, action="sessions_revoked", ticket_id=None,
                              detail={"agent": target.username, "sessions": revoked}, created_at=self.clock()))
            return revoked

    # --- admin ------------------------------------------------------------------------------
    def set_active(self, admin: AgentIdentity, username: str, active: bool) -> dict[str, Any]:
        """Disable (signs the agent out everywhere; they can no longer sign in) or enable an agent."""
        with transaction(self._sessions) as db:
            target = self._agent(db, admin, username)
            if target.id == admin.id and not active:
                raise HandoffError(409, "you cannot disable your own account")
            target.active = active
            detail: dict[str, Any] = {"agent": target.username}
            if not active:
                target.status = "offline"
                detail["sessions"] = self._revoke(db, target)
            db.add(AuditEntry(actor=admin.username, action="enable_agent" if active else "disable_agent",
                              ticket_id=None, detail=detail, created_at=self.clock()))
            return agent_view(target)

    @staticmethod
    def _agent(db: Session, actor: AgentIdentity, username: str) -> Agent:
        if actor.role != "admin" and username != actor.username:
            raise HandoffError(403, "admins only")
        target = db.scalar(select(Agent).where(Agent.username == username))
        if target is None:
            raise HandoffError(404, "no such agent")
        return target

    @staticmethod
    def _revoke(db: Session, agent: Agent) -> int:
        return int(db.execute(delete(AgentSession).where(AgentSession.agent_id == agent.id)).rowcount or 0)

    def set_status(self, agent: AgentIdentity, status: str) -> dict[str, Any]:
        if status not in ("online", "away", "offline"):
            raise HandoffError(422, "status must be online, away or offline")
        with transaction(self._sessions) as db:
            a = db.get_one(Agent, agent.id)
            a.status, a.last_seen_at = status, self.clock()
            db.add(AuditEntry(actor=agent.username, action="status", ticket_id=None, detail={"status": status},
                              created_at=self.clock()))
            return agent_view(a)

    def me(self, agent: AgentIdentity) -> dict[str, Any]:
        with self._sessions() as db:
            return agent_view(db.get_one(Agent, agent.id))

    def create_agent(self, admin: AgentIdentity, data: dict[str, Any]) -> dict[str, Any]:
        if len(data["password"]) < MIN_PASSWORD_CHARS:
            raise HandoffError(422, f"password must have at least {MIN_PASSWORD_CHARS} characters")
        with transaction(self._sessions) as db:
            if db.scalar(select(Agent.id).where(Agent.username == data["username"])) is not None:
                raise HandoffError(409, f"agent {data['username']!r} exists")
            known = set(db.scalars(select(HandoffQueue.name)))
            unknown = set(data["queues"]) - known
            if unknown:
                raise HandoffError(422, f"unknown queues {sorted(unknown)}")
            now = self.clock()
            agent = Agent(username=data["username"], display_name=data["display_name"],
                          password_hash=hash_password(data["password"]), role=data["role"], queues=list(data["queues"]),
                          capacity=data["capacity"], status="offline", active=True, created_at=now)
            db.add(agent)
            db.flush()
            db.add(AuditEntry(actor=admin.username, action="create_agent", ticket_id=None,
                              detail={"username": agent.username, "role": agent.role}, created_at=now))
            return agent_view(agent)

    def list_agents(self) -> list[dict[str, Any]]:
        with self._sessions() as db:
            return [agent_view(a) for a in db.scalars(select(Agent).order_by(Agent.id))]

    def create_queue(self, admin: AgentIdentity, data: dict[str, Any]) -> dict[str, Any]:
        if data["language"] not in LANGUAGES:
            raise HandoffError(422, f"language must be one of {LANGUAGES}")
        try:
            tz = _timezone(data["timezone"], "timezone")
            hours = _hours(data.get("hours") or {}, "hours")
        except ValueError as err:
            raise HandoffError(422, str(err)) from err
        with transaction(self._sessions) as db:
            if db.get(HandoffQueue, data["name"]) is not None:
                raise HandoffError(409, f"queue {data['name']!r} exists")
            now = self.clock()
            q = HandoffQueue(name=data["name"], topic=data["topic"], language=data["language"], timezone=tz, hours=hours,
                             avg_handle_minutes=data["avg_handle_minutes"], created_at=now)
            db.add(q)
            db.add(AuditEntry(actor=admin.username, action="create_queue", ticket_id=None, detail={"queue": q.name},
                              created_at=now))
            return {"name": q.name, "topic": q.topic, "language": q.language, "timezone": q.timezone, "hours": q.hours,
                    "avg_handle_minutes": q.avg_handle_minutes}

    def audit_log(self, ticket_id: int | None, limit: int) -> list[dict[str, Any]]:
        with self._sessions() as db:
            q = select(AuditEntry)
            if ticket_id is not None:
                q = q.where(AuditEntry.ticket_id == ticket_id)
            return [{"id": e.id, "actor": e.actor, "action": e.action, "ticket_id": e.ticket_id, "detail": e.detail,
                     "at": e.created_at.isoformat()}
                    for e in db.scalars(q.order_by(AuditEntry.id.desc()).limit(limit))]
