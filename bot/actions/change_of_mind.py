"""A customer who takes a request back or asks for something else in the middle of a form.

Rasa maps the message to the requested slot before any validator runs, so "never mind, don't change
it, just cancel the order" would become the new address and "wait, actually do a return instead" the
refund reason. Every form validator asks this module first: a message whose intent is another task,
or that takes the request back, fills nothing; the form ends with nothing written, and another task
asked for is started next (``next_task``, followed up by the action that ends the form).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.forms import REQUESTED_SLOT

from bot.actions import confirm

CONFIRM_SLOT = "confirm_write"
# The form each task intent starts.
TASK_FORMS: dict[str, str] = {
    "check_order_status": "order_status_form",
    "track_shipment": "tracking_form",
    "refund_status": "refund_status_form",
    "request_refund": "refund_form",
    "return_item": "return_form",
    "cancel_order": "cancel_form",
    "change_shipping_address": "address_form",
    "reset_password": "password_reset_form",
}
# Below this the intent is not trusted to override a slot answer (answers are often short and odd).
SWITCH_CONFIDENCE = 0.6
# A plain "no"/"stop" only ends the form at the steps that ask for the task's own data; at the order
# number and identity steps a "no" is answered by the form's own rules.
DATA_SLOTS = frozenset({"new_address", "refund_reason", "return_reason", "refund_method", CONFIRM_SLOT})
ENDING_INTENTS = frozenset({"stop", "deny"})
REASON_SLOTS = frozenset({"refund_reason", "return_reason"})
# The form reads a customer message only right after it (Rasa's own rule: listen, then slot mapping).
READING_ACTIONS = frozenset({"action_listen", "action_extract_slots"})


@dataclass(frozen=True)
class Turn:
    intent: str | None
    confidence: float
    text: str
    requested: str | None


def latest(tracker: Tracker) -> Turn:
    message = tracker.latest_message or {}
    intent = message.get("intent") or {}
    return Turn(
        intent=intent.get("name"),
        confidence=float(intent.get("confidence") or 0.0),
        text=message.get("text") or "",
        requested=tracker.get_slot(REQUESTED_SLOT),
    )


def other_task(turn: Turn, own_form: str) -> str | None:
    """The form of another task this message asks for, if the NLU is sure of it."""
    form = TASK_FORMS.get(turn.intent or "")
    if form is None or form == own_form or turn.confidence < SWITCH_CONFIDENCE:
        return None
    return form


def takes_back(turn: Turn) -> bool:
    if turn.requested not in DATA_SLOTS or turn.requested == CONFIRM_SLOT:
        return False  # the confirmation step reads its own answer (bot.actions.confirm)
    if turn.requested in REASON_SLOTS and turn.intent == "deny":
        return confirm.retracts(turn.text)  # "wrong colour", "no good": a reason, not a no
    return turn.intent in ENDING_INTENTS or confirm.retracts(turn.text)


def end_form(tracker: Tracker, next_task: str | None = None) -> list[EventType]:
    """Nothing from this message is kept; the form ends and its submit action writes nothing."""
    dropped: dict[str, Any] = {slot: None for slot in tracker.slots_to_validate() if slot in DATA_SLOTS}
    events: list[EventType] = [SlotSet(slot, value) for slot, value in dropped.items()]
    events += [SlotSet(CONFIRM_SLOT, None), SlotSet("task_blocked", True), SlotSet("next_task", next_task)]
    return [*events, SlotSet(REQUESTED_SLOT, None)]


def reads_customer_message(tracker: Tracker, form: str) -> bool:
    """Whether the form runs on a message just received. Rasa hands validators a tracker ending in
    the form's own ``ActionExecuted``; what ran before it tells a reading turn (listen) from a form
    started by a rule or by another action."""
    seen_form = False
    for event in reversed(tracker.events):
        if event.get("event") != "action":
            continue
        if not seen_form and event.get("name") == form:
            seen_form = True
            continue
        return event.get("name") in READING_ACTIONS
    return False


def guard(tracker: Tracker, dispatcher: CollectingDispatcher, own_form: str) -> list[EventType] | None:
    """Events that end the form when the customer changed their mind; None to validate as usual."""
    if not reads_customer_message(tracker, own_form):
        return None  # the form is starting (or re-asking): no new customer message to read
    turn = latest(tracker)
    switch = other_task(turn, own_form)
    if switch is not None:
        if (
            turn.requested == CONFIRM_SLOT
            and confirm.read(turn.text, turn.intent, turn.confidence) == confirm.Answer.YES
        ):
            return None
        dispatcher.utter_message(response="utter_task_switched")
        return end_form(tracker, next_task=switch)
    if takes_back(turn):
        dispatcher.utter_message(response="utter_nothing_changed")
        return end_form(tracker)
    return None
