"""Timeout rules, run every ``handoff_sweep_interval_s`` by a background task in the gateway.

Defaults (minutes, the settings' handoff section):
- a queued customer silent for ``handoff_queued_abandon_min`` while the queue is open, whom we
  cannot reach later (no push channel, no email) → ticket ``abandoned``, bot resumes;
  outside hours the ticket waits (the customer was told when the team is back);
- an agent who leaves the customer's last message unanswered for ``handoff_agent_nudge_min`` →
  the customer is reassured and the consoles get ``ticket.agent_silent``; after
  ``handoff_agent_requeue_min`` → re-queued one priority step higher for another agent;
- an assigned chat where nobody wrote for ``handoff_idle_close_min`` → ``closed``, bot resumes.
Then waiting tickets are offered to free agents (automatic assignment).

Each rule is a lifecycle event (``ABANDON``, ``REQUEUE``, ``IDLE_CLOSE``); a ticket an agent
changed while the sweep ran (``StaleState``) is left for the next pass, and the pass is read again.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import Any

from anyio import to_thread
from sqlalchemy import select
from sqlalchemy.orm import Session

from conversations.models import Conversation
from conversations.service import OutboundMessage
from handoff import hours, lifecycle, texts
from handoff.assignment import position_of
from handoff.events import AGENTS
from handoff.lifecycle import Column, Event, IllegalTransition, StaleState, TicketStatus
from handoff.models import Agent, HandoffQueue, Ticket
from handoff.service import HandoffService
from storage.db import transaction
from storage.leases import lease_for, run_leased

log = logging.getLogger(__name__)

Action = tuple[str, int, int, str, dict[str, Any]]  # (kind, ticket id, conversation id, language, extra)


def sweep_db(service: HandoffService) -> list[Action]:
    for _ in range(3):
        try:
            return _sweep_pass(service)
        except StaleState:  # an agent changed a ticket meanwhile: nothing of this pass was written; again
            continue
    return []


def _sweep_pass(service: HandoffService) -> list[Action]:
    s = service.settings
    now = service.clock()
    actions: list[Action] = []
    with transaction(service.sessions) as db:
        for t in db.scalars(select(Ticket).where(Ticket.status.in_((TicketStatus.QUEUED, TicketStatus.ASSIGNED)))):
            conv = db.get_one(Conversation, t.conversation_id)
            last_customer = t.last_customer_at or t.created_at
            if t.status == TicketStatus.QUEUED:
                queue = db.get(HandoffQueue, t.queue)
                open_now = queue is None or hours.is_open(queue.hours, queue.timezone, now)
                reachable = bool(t.contact_email) or (service.pushers is not None and service.pushers.can_reach(t.channel))
                if open_now and not reachable and now - last_customer > timedelta(minutes=s.handoff_queued_abandon_min):
                    if not _take(db, Event.ABANDON, conv, t, now):
                        continue
                    service._audit(db, "system", "abandon", t.id, {"silent_min": s.handoff_queued_abandon_min})
                    actions.append(("abandoned", t.id, conv.id, t.language, {}))
                continue
            agent_last = max(x for x in (t.last_agent_at, t.assigned_at) if x is not None)
            waiting_for_agent = t.last_customer_at is not None and t.last_customer_at > agent_last
            if waiting_for_agent and now - t.last_customer_at > timedelta(minutes=s.handoff_agent_requeue_min):
                agent = db.get_one(Agent, t.agent_id) if t.agent_id else None
                if not _take(db, Event.REQUEUE, conv, t, now):
                    continue
                t.agent_id, t.assigned_at, t.queued_at = None, None, now
                t.priority = max(0, t.priority - 1)
                service._audit(db, "system", "requeue", t.id, {"silent_agent": agent.username if agent else None})
                actions.append(("requeued", t.id, conv.id, t.language, {}))
            elif waiting_for_agent and t.agent_nudged_at is None and \
                    now - t.last_customer_at > timedelta(minutes=s.handoff_agent_nudge_min):
                t.agent_nudged_at = now
                agent = db.get_one(Agent, t.agent_id)
                service._audit(db, "system", "nudge", t.id, {"agent": agent.username})
                actions.append(("nudged", t.id, conv.id, t.language, {"agent": agent.display_name}))
            elif not waiting_for_agent and now - max(last_customer, agent_last) > timedelta(minutes=s.handoff_idle_close_min):
                if not _take(db, Event.IDLE_CLOSE, conv, t, now):
                    continue
                service._audit(db, "system", "close_idle", t.id, {})
                actions.append(("idle_closed", t.id, conv.id, t.language, {}))
    return actions


def _take(db: Session, event: Event, conv: Conversation, ticket: Ticket, now: datetime) -> bool:
    """Apply ``event``; a ticket whose conversation is in a state the table does not allow it from
    is logged and skipped (nothing was written for it), so one bad row cannot stop every sweep.
    ``StaleState`` (a concurrent change) goes up: the pass is read again."""
    try:
        lifecycle.apply(db, event, conv, ticket, now=now)
    except StaleState:
        raise
    except IllegalTransition as err:
        log.error("handoff timeout not applied", extra={"ticket_id": ticket.id, "event": event.value, "error": str(err)})
        return False
    return True


async def sweep(service: HandoffService) -> list[Action]:
    """One pass of the rules; returns what was done (for tests and logs)."""
    actions = await to_thread.run_sync(sweep_db, service)
    for kind, ticket_id, conv_id, lang, extra in actions:
        summary = await to_thread.run_sync(_summary, service, ticket_id)
        if kind == "nudged":
            service.events.publish(AGENTS, {"type": "ticket.agent_silent", "ticket": summary})
            text = texts.text("agent_nudge", lang, agent=extra["agent"])
            state = Column.HUMAN
        else:
            service.events.publish(AGENTS, {"type": "ticket.updated", "ticket": summary})
            if kind == "requeued":
                text = texts.text("requeued", lang, position=summary.get("position") or 1)
                state = Column.QUEUED
            else:
                text = texts.text(kind, lang)
                state = Column.BOT
        await service.deliver(conv_id, [OutboundMessage("handoff", text)], state=state)
    await service.assign_waiting()
    return actions


def _summary(service: HandoffService, ticket_id: int) -> dict[str, Any]:
    with service.sessions() as db:
        summary = service._summary(db, db.get_one(Ticket, ticket_id))
    summary["position"] = position_of(service, ticket_id)
    return summary


LEASE = "handoff-timeouts"


async def run_forever(service: HandoffService, interval_s: float) -> None:
    """Sweep every ``interval_s``, in one gateway replica at a time (storage/leases.py: on a shared
    database the replica holding the lease sweeps, another takes over when it dies; on SQLite, here)."""
    await run_leased(lease_for(service.sessions, LEASE), lambda: _sweep_forever(service, interval_s))


async def _sweep_forever(service: HandoffService, interval_s: float) -> None:
    while True:
        try:
            done = await sweep(service)
            if done:
                log.info("handoff timeouts applied", extra={"actions": [(k, t) for k, t, *_ in done]})
        except Exception:
            log.exception("handoff timeout sweep failed")
        await asyncio.sleep(interval_s)
