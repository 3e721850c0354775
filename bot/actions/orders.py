"""Actions that answer or change an order once its form has verified the customer.

Each submit action also closes the task: it clears the task's own slots so the next request
starts clean, but keeps the order id and the verified identity, which the customer may need
again in the same conversation.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from decimal import Decimal
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from bot.actions import identity
from bot.actions.forms import refusal_vars
from bot.actions.handoff import say
from bot.actions.offer import offer
from bot.actions.runtime import services
from conversations.labels import REFUND_METHOD, label, language
from store.policies import PolicyViolation
from store.service import OrderView

TASK_SLOTS = ("refund_reason", "refund_method", "return_reason", "new_address", "confirm_write")
# The action that writes what each write form collected; it runs only after a clear yes.
WRITE_ACTIONS = {
    "cancel_form": "action_cancel_order",
    "address_form": "action_change_address",
    "refund_form": "action_submit_refund",
    "return_form": "action_submit_return",
    "password_reset_form": "action_reset_password",
}


def money(amount: Decimal, currency: str = "USD") -> str:
    symbol = {"USD": "$", "EUR": "€", "GBP": "£", "CNY": "¥", "RUB": "₽"}.get(currency)
    return f"{symbol}{amount:,.2f}" if symbol else f"{amount:,.2f} {currency}"


def day(value: Any) -> str:
    return value.date().isoformat() if value is not None else ""


def order_vars(order: OrderView) -> dict[str, Any]:
    items = ", ".join(f"{i.quantity} × {i.product_name}" if i.quantity > 1 else i.product_name for i in order.items)
    return {
        "order_id": order.order_id,
        "items": items,
        "total": money(order.total, order.currency),
        "ordered_at": day(order.ordered_at),
        "shipped_at": day(order.shipped_at),
        "delivered_at": day(order.delivered_at),
        "carrier": order.carrier or "",
        "tracking_number": order.tracking_number or "",
    }


def task_reset(tracker: Tracker, listen: bool = False) -> list[EventType]:
    """Clears the finished task's slots; starts the task the customer switched to, if any, else
    (``listen``: after a write that a rule did not predict) waits for the customer."""
    events: list[EventType] = [SlotSet(slot, None) for slot in TASK_SLOTS]
    events += [SlotSet("task_blocked", False), SlotSet("failed_attempts", 0)]
    next_task = tracker.get_slot("next_task")
    if next_task:
        events += [SlotSet("next_task", None), FollowupAction(next_task)]
    elif listen:
        events.append(FollowupAction("action_listen"))
    return events


def last_form(tracker: Tracker) -> str | None:
    for event in reversed(tracker.events):
        if event.get("event") == "active_loop" and event.get("name"):
            return event["name"]
    return None


class ActionCompleteTask(Action):
    """Ends a write form: the write runs only on the customer's clear yes to the values stated back.

    After a no, a refusal, too many failed checks or a change of mind nothing is written (what to
    say was said by the form), the task's slots are cleared and a task switched to starts.
    """

    def name(self) -> str:
        return "action_complete_task"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        write = WRITE_ACTIONS.get(last_form(tracker) or "")
        if write and tracker.get_slot("confirm_write") is True and not tracker.get_slot("task_blocked"):
            return [FollowupAction(write)]
        return task_reset(tracker)


class OrderTaskAction(Action, ABC):
    """The end of an order form: stop politely if it failed, else ``perform`` the task."""

    # Writes run only after a yes to their values (action_complete_task); never on a tracker without it.
    needs_confirmation = False

    @abstractmethod
    def name(self) -> str: ...

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        reset = task_reset(tracker, listen=self.needs_confirmation)
        if self.needs_confirmation and tracker.get_slot("confirm_write") is not True:
            return reset
        if tracker.get_slot("task_blocked"):
            return reset  # the refusal was already explained by the validator
        unverified = [SlotSet("order_id", None), SlotSet("customer_identifier", None), SlotSet("verified", False)]
        # Never on the tracker's word alone: the store confirms, now, that the verified identity owns
        # the order, and neither the order nor the sender is locked out of verification.
        order = identity.verified_order(tracker)
        if order is None and tracker.get_slot("verified"):  # a claim the store does not confirm (forged)
            identity.guard().record_failure(identity.claimed_order(tracker), tracker.sender_id)
            dispatcher.utter_message(response="utter_verification_failed")
            return [*reset, *unverified, SlotSet("verified_username", None)]
        if order is None:
            until = identity.guard().locked_until(tracker.sender_id, identity.claimed_order(tracker))
            dispatcher.utter_message(response="utter_too_many_attempts", minutes=identity.minutes_left(until))
            return [*reset, *unverified]
        until = identity.guard().locked_until(tracker.sender_id, order.order_id)
        if until is not None:
            dispatcher.utter_message(response="utter_verification_locked", minutes=identity.minutes_left(until))
            return [*reset, *unverified]
        return [*self.perform(order, dispatcher, tracker), *reset]

    @abstractmethod
    def perform(self, order: OrderView, dispatcher: CollectingDispatcher, tracker: Tracker) -> list[EventType]: ...


class ActionOrderStatus(OrderTaskAction):
    def name(self) -> str:
        return "action_order_status"

    def perform(self, order: OrderView, dispatcher: CollectingDispatcher, tracker: Tracker) -> list[EventType]:
        dispatcher.utter_message(response=f"utter_status_{order.status}", **order_vars(order))
        return []


class ActionTrackShipment(OrderTaskAction):
    def name(self) -> str:
        return "action_track_shipment"

    def perform(self, order: OrderView, dispatcher: CollectingDispatcher, tracker: Tracker) -> list[EventType]:
        status = str(order.status)
        if status == "shipped":
            response = "utter_tracking_in_transit"
        elif order.tracking_number and order.delivered_at:
            response = "utter_tracking_delivered"
        elif status == "processing":
            response = "utter_tracking_not_shipped"
        else:
            response = "utter_tracking_none"
        dispatcher.utter_message(response=response, **order_vars(order))
        return []


class ActionRefundStatus(OrderTaskAction):
    def name(self) -> str:
        return "action_refund_status"

    def perform(self, order: OrderView, dispatcher: CollectingDispatcher, tracker: Tracker) -> list[EventType]:
        if not say_refund_status(order, dispatcher, tracker):
            dispatcher.utter_message(response="utter_refund_status_none", order_id=order.order_id)
            return [offer("refund_form")]
        return []


def say_refund_status(order: OrderView, dispatcher: CollectingDispatcher, tracker: Tracker) -> bool:
    """Where the order's refund stands (requested, waiting for approval, paid, refused); False when
    the order has none. Also the answer to a refund asked for again ("the money never came, what's
    up with it?"): its status, not only "already requested"."""
    refund = order.refund
    if refund is None:
        return False
    response = {
        "pending_approval": "utter_refund_status_pending_approval",
        "refunded": "utter_refund_status_done",
        "rejected": "utter_refund_status_rejected",
    }.get(str(refund.status), "utter_refund_status_requested")
    dispatcher.utter_message(
        response=response,
        order_id=order.order_id,
        amount=money(refund.amount, order.currency),
        method=label(REFUND_METHOD, str(refund.method), language(tracker)),
        created_at=day(refund.created_at),
    )
    return True


class OrderWriteAction(OrderTaskAction):
    """A change the customer said yes to, made and reported by ``write``. The store refuses it with
    ``PolicyViolation`` before writing anything when the order changed since the form checked it:
    then ``refused_response`` says why."""

    needs_confirmation = True
    refused_response = ""

    def perform(self, order: OrderView, dispatcher: CollectingDispatcher, tracker: Tracker) -> list[EventType]:
        try:
            return self.write(order, dispatcher, tracker)
        except PolicyViolation as refused:
            lang = language(tracker)
            dispatcher.utter_message(response=self.refused_response, **refusal_vars(order, refused.detail, lang))
            return []

    @abstractmethod
    def write(self, order: OrderView, dispatcher: CollectingDispatcher, tracker: Tracker) -> list[EventType]:
        """Makes the change in the store (its first step), then tells the customer what was done."""


class ActionSubmitRefund(OrderWriteAction):
    refused_response = "utter_refund_refused_already"

    def name(self) -> str:
        return "action_submit_refund"

    def write(self, order: OrderView, dispatcher: CollectingDispatcher, tracker: Tracker) -> list[EventType]:
        lang = language(tracker)
        refund = services().orders.request_refund(
            order.order_id, tracker.get_slot("refund_method"), tracker.get_slot("refund_reason") or ""
        )
        needs_approval = str(refund.status) == "pending_approval"
        dispatcher.utter_message(
            response="utter_refund_needs_approval" if needs_approval else "utter_refund_requested",
            order_id=order.order_id,
            amount=money(refund.amount, order.currency),
            method=label(REFUND_METHOD, str(refund.method), lang),
            refund_id=refund.id,
            limit=money(services().settings.auto_refund_limit, order.currency),
        )
        handoff = services().handoff
        if needs_approval and handoff is not None:  # business rule: a person approves it, with the order in context
            decision = handoff.policy.refund_above_limit(
                order.order_id,
                money(refund.amount, order.currency),
                money(services().settings.auto_refund_limit, order.currency),
            )
            slots = {**tracker.current_slot_values(), "order_id": order.order_id}
            outcome = handoff.escalate_blocking(
                tracker.sender_id, decision, {"intent": "request_refund", "slots": slots}
            )
            say(dispatcher, outcome.messages)
        return []


class ActionSubmitReturn(OrderWriteAction):
    refused_response = "utter_return_refused_other"

    def name(self) -> str:
        return "action_submit_return"

    def write(self, order: OrderView, dispatcher: CollectingDispatcher, tracker: Tracker) -> list[EventType]:
        ret = services().orders.start_return(order.order_id, tracker.get_slot("return_reason") or "")
        dispatcher.utter_message(
            response="utter_return_started", order_id=order.order_id, rma=ret.rma_code, carrier=order.carrier or "UPS"
        )
        return []


class ActionCancelOrder(OrderWriteAction):
    refused_response = "utter_cancel_refused_shipped"

    def name(self) -> str:
        return "action_cancel_order"

    def write(self, order: OrderView, dispatcher: CollectingDispatcher, tracker: Tracker) -> list[EventType]:
        services().orders.cancel_order(order.order_id)
        dispatcher.utter_message(response="utter_order_cancelled", order_id=order.order_id)
        return []


class ActionChangeAddress(OrderWriteAction):
    refused_response = "utter_address_refused_shipped"

    def name(self) -> str:
        return "action_change_address"

    def write(self, order: OrderView, dispatcher: CollectingDispatcher, tracker: Tracker) -> list[EventType]:
        updated = services().orders.change_address(order.order_id, tracker.get_slot("new_address"))
        dispatcher.utter_message(
            response="utter_address_changed", order_id=order.order_id, address=updated.shipping_address
        )
        return []
