"""The services the actions use, handed over by the gateway at start-up.

rasa-sdk instantiates actions itself, so dependencies can't be passed to constructors; the
gateway calls ``configure`` once, and tests may call it with their own database.
"""

from __future__ import annotations

from dataclasses import dataclass

from settings import Settings
from store.service import OrdersService


@dataclass(frozen=True)
class ActionServices:
    orders: OrdersService
    settings: Settings


_services: ActionServices | None = None


def configure(orders: OrdersService, settings: Settings) -> None:
    global _services
    _services = ActionServices(orders=orders, settings=settings)


def services() -> ActionServices:
    if _services is None:
        raise RuntimeError("bot.actions.runtime.configure() was not called by the gateway")
    return _services
