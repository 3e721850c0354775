"""A yes or no outside a task: the answer to the bot's own offer, if it just made one.

Some answers end in an offer ("There's no refund on order X. Would you like to request one?"). The
action that makes it sets ``offered_task`` to the form that would start. The customer's next message
is read as the answer to that offer only: a yes starts the form (the order and the verified
identity are already known, so it goes straight to the task's own questions), a no or anything
else lets the offer lapse. A "talk to a person" button in that answer is an offer of a person: a
typed yes ("yes please", "да, давайте") accepts it like the button. A yes or no with no offer
pending is answered "anything else?".
"""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from bot.actions.extract import typed_text
from conversations import confirm

OFFER_SLOT = "offered_task"
HANDOFF_ACTION = "action_handoff_request"
# A "talk to a person" button in the bot's last answer is an offer too: a typed yes accepts it.
HANDOFF_PAYLOAD = "/human_handoff"
# What an offer may start: only forms, never a write (every write form asks its own confirmation).
OFFERABLE = frozenset({"refund_form", "return_form", HANDOFF_ACTION})


def offer(form: str) -> SlotSet:
    """The event an action returns with its offer; ``form`` starts if the customer says yes next."""
    if form not in OFFERABLE:
        raise ValueError(f"{form} cannot be offered")
    return SlotSet(OFFER_SLOT, form)


def pending_offer(tracker: Tracker) -> str | None:
    """The form offered since the customer's previous message, if the offer is still open.

    Only an offer made in the bot's last answer counts: an older one has lapsed, whatever the slot
    still holds.
    """
    users = 0
    for event in reversed(tracker.events):
        kind = event.get("event")
        if kind == "user":
            users += 1
            if users == 2:
                return None
        elif kind == "slot" and event.get("name") == OFFER_SLOT and users == 1:
            value = event.get("value")
            if value in OFFERABLE:
                return value
        elif kind == "bot" and users == 1 and _offers_a_person(event):
            return HANDOFF_ACTION
    return None


def _offers_a_person(event: dict[str, Any]) -> bool:
    data = event.get("data") or {}
    buttons = list(data.get("buttons") or []) + list((data.get("custom") or {}).get("buttons") or [])
    return any(isinstance(b, dict) and b.get("payload") == HANDOFF_PAYLOAD for b in buttons)


class ActionAnswerYesNo(Action):
    def name(self) -> str:
        return "action_answer_yes_no"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        events: list[EventType] = [SlotSet(OFFER_SLOT, None)] if tracker.get_slot(OFFER_SLOT) else []
        form = pending_offer(tracker)
        if form and _answer(tracker) is confirm.Answer.YES:
            return [*events, FollowupAction(form)]
        if form and form != HANDOFF_ACTION:
            dispatcher.utter_message(response="utter_offer_declined")
        else:
            dispatcher.utter_message(response="utter_anything_else")
        return events


def _answer(tracker: Tracker) -> confirm.Answer:
    message: dict[str, Any] = tracker.latest_message or {}
    intent = (message.get("intent") or {}).get("name")
    confidence = float((message.get("intent") or {}).get("confidence") or 0.0)
    return confirm.read(typed_text(tracker), intent, confidence)
