"""The services the actions use, handed over by the gateway at start-up.

rasa-sdk instantiates actions itself, so dependencies can't be passed to constructors; the
gateway calls ``configure`` once, and tests may call it with their own database.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session, sessionmaker

from settings import Settings
from store.service import OrdersService

if TYPE_CHECKING:
    from handoff.service import HandoffService
    from kb_index.answering import Answerer


@dataclass(frozen=True)
class ActionServices:
    orders: OrdersService
    settings: Settings
    sessions: sessionmaker[Session] | None = None  # the gateway's database (KB answers, handoff)
    knowledge: Answerer | None = None  # None until the help centre index is loaded
    handoff: HandoffService | None = None  # human handoff; None: actions say a person can't be reached here


_services: ActionServices | None = None


def configure(orders: OrdersService, settings: Settings, **optional: Any) -> None:
    """``optional``: any other ActionServices field (sessions, knowledge, …) by name."""
    global _services
    _services = ActionServices(orders=orders, settings=settings, **optional)


def update(**fields: Any) -> None:
    """Hand over a service that becomes ready later than start-up (e.g. the KB after its first build)."""
    global _services
    _services = replace(services(), **fields)


def services() -> ActionServices:
    if _services is None:
        raise RuntimeError("bot.actions.runtime.configure() was not called by the gateway")
    return _services
