"""Human handoff: policy (when), tickets and context (what), queues and routing (who), the live
relay between customer and agent, timeouts, and outbound adapters (webhook, email).

``start(app, ...)`` wires it into the gateway; see README "Human handoff".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from anyio import to_thread

if TYPE_CHECKING:
    from fastapi import FastAPI
    from sqlalchemy.orm import Session, sessionmaker

    from conversations.service import ConversationService
    from handoff.adapters.outbox import OutboxWorker
    from handoff.events import EventBus
    from handoff.service import HandoffService
    from settings import Settings
    from store.service import OrdersService

log = logging.getLogger(__name__)


@dataclass
class Running:
    service: HandoffService
    outbox: OutboxWorker
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.outbox.close()
        await self.service.events.close()  # the live-event bus's Redis connections (none in memory)


def build(sessions: sessionmaker[Session], settings: Settings, *, pushers: Any = None, events: EventBus | None = None,
          orders: OrdersService | None = None, seed_accounts: bool = True) -> tuple[HandoffService, OutboxWorker]:
    """Create the service and its outbox worker (no background tasks): used by the gateway and tests."""
    from handoff import config as handoff_config
    from handoff.adapters.email import EmailAdapter
    from handoff.adapters.outbox import OutboxWorker
    from handoff.adapters.webhook import WebhookAdapter
    from handoff.events import events_from_settings
    from handoff.seed import seed_handoff
    from handoff.service import HandoffService
    from handoff.tokens import ConversationTokens
    from storage.secrets import key_for

    cfg = handoff_config.load(settings.handoff_config)
    # Separate keys (storage/secrets.py): whoever holds the helpdesk's webhook secret cannot mint
    # customers' conversation tokens, and the reverse.
    tokens = ConversationTokens.from_settings(settings)
    service = HandoffService(sessions, settings, cfg, tokens, pushers=pushers, orders=orders,
                             events=events or events_from_settings(settings))
    if seed_accounts:
        seed_handoff(sessions, settings, cfg)
    adapters: dict[str, Any] = {}
    if settings.handoff_webhook_url:
        configured = settings.handoff_webhook_secret.get_secret_value()
        if not configured:
            log.warning("HANDOFF_WEBHOOK_SECRET is not set: webhooks are signed with a key derived from SECRET_KEY "
                        "that the helpdesk cannot know; set HANDOFF_WEBHOOK_SECRET and give it to the helpdesk")
        webhook_key = key_for(settings, "helpdesk-webhook", configured)
        adapters["webhook"] = WebhookAdapter(settings.handoff_webhook_url, webhook_key.encode())
    if settings.handoff_smtp_host and settings.handoff_email_to:
        adapters["email"] = EmailAdapter(
            settings.handoff_smtp_host, settings.handoff_smtp_port, settings.handoff_email_from, settings.handoff_email_to,
            tls=settings.handoff_smtp_tls, username=settings.handoff_smtp_username,
            password=settings.handoff_smtp_password.get_secret_value(),
        )
    outbox = OutboxWorker(sessions, adapters, backoff_s=settings.handoff_outbox_backoff_s)
    service.outbox_wakeup = outbox.wakeup
    return service, outbox


async def start(app: FastAPI, sessions: sessionmaker[Session], settings: Settings, conversations: ConversationService,
                orders: OrdersService | None) -> Running:
    """Wire the handoff into a running gateway: turn hooks, routes' state, background tasks (the
    gateway gives ``running.service`` to the handoff actions: server.py)."""
    from handoff import timeouts
    from handoff.accounts import Accounts
    from handoff.api import HandoffApp
    from handoff.auth import LoginThrottle
    from handoff.events import events_from_settings

    pushers = getattr(app.state, "pushers", None)
    events = getattr(app.state, "events", None) or events_from_settings(settings)  # shared with the widget hub
    app.state.events = events
    service, outbox = await to_thread.run_sync(
        lambda: build(sessions, settings, pushers=pushers, events=events, orders=orders)
    )
    conversations.hooks = service
    app.state.handoff = HandoffApp(
        service=service,
        accounts=Accounts(sessions, settings.handoff_session_hours, service.clock),
        limiter=LoginThrottle.from_settings(settings),  # per address and per account, bounded hashing
    )
    running = Running(service, outbox)
    running.tasks.append(asyncio.create_task(outbox.run_forever(), name="handoff-outbox"))
    running.tasks.append(asyncio.create_task(timeouts.run_forever(service, settings.handoff_sweep_interval_s),
                                             name="handoff-timeouts"))
    log.info("human handoff ready", extra={"queues": len(service.config.queues), "adapters": sorted(outbox.adapters)})
    return running
