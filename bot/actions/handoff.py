"""Human handoff from inside the dialogue: the customer asks for a person (text in any language
or the "talk to a person" button, intent ``human_handoff``). The decision is
``handoff.policy.HandoffPolicy.explicit_request``; ``handoff.service`` files the ticket, routes it
and says where the customer stands (queue position, an agent's name, or when the team is back).
"""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from bot.actions import identity, offer
from bot.actions.extract import typed_text
from bot.actions.runtime import services
from handoff import frustration
from handoff.policy import Escalate, HandoffPolicy

HANDOFF_INTENT = "human_handoff"


def times_asked(tracker: Tracker) -> int:
    """How many times in this conversation the customer asked for a person (this message included)."""
    return sum(
        1 for e in tracker.events
        if e.get("event") == "user" and ((e.get("parse_data") or {}).get("intent") or {}).get("name") == HANDOFF_INTENT
    )


def membership(tracker: Tracker) -> str | None:
    """The verified customer's membership level (gold customers get priority), when the store
    confirms the verified identity owns the tracker's order."""
    order = identity.verified_order(tracker)
    return str(order.customer.membership_level) if order is not None else None


def facts(tracker: Tracker) -> dict[str, Any]:
    """What the bot knows right now (this turn is not in the conversation store yet)."""
    latest = tracker.latest_message or {}
    intent = (latest.get("intent") or {}).get("name")
    previous = next(
        (
            ((e.get("parse_data") or {}).get("intent") or {}).get("name")
            for e in reversed(tracker.events)
            if e.get("event") == "user"
            and ((e.get("parse_data") or {}).get("intent") or {}).get("name") not in (None, HANDOFF_INTENT, "affirm", "deny")
        ),
        None,
    )
    slots = dict(tracker.current_slot_values())
    if slots.get("verified") and identity.verified_order(tracker) is None:  # the agent must not be told "verified"
        slots.update(verified=False, verified_username=None)
    return {"intent": previous or intent, "slots": slots}


def say(dispatcher: CollectingDispatcher, messages: list[str]) -> None:
    for text in messages:
        dispatcher.utter_message(json_message={"type": "handoff", "text": text})


def angry_not_asking(tracker: Tracker, policy: HandoffPolicy) -> bool:
    """An angry message that the NLU took for a request for a person without asking for one
    ("ridiculous service, I've asked three times already!!!", at 0.58 and at 0.84 by two models): it
    gets an offer, not a queue, however sure the classifier is. A person asked for in the words, or a
    button, is a request."""
    latest = tracker.latest_message or {}
    text = latest.get("text") or ""
    if text.startswith("/") or offer.pending_offer(tracker) or policy.asks_for_person(text):
        return False
    if frustration.score(text).value < policy.config.frustration_threshold:
        return False
    return not policy.angry_person_request(text)  # frustrated, and no person asked for in the words


class ActionHandoffRequest(Action):
    def name(self) -> str:
        return "action_handoff_request"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        handoff = services().handoff
        if handoff is None:
            dispatcher.utter_message(response="utter_handoff_unavailable")
            return []
        if angry_not_asking(tracker, handoff.policy):
            return []  # the gateway offers a person for the frustration (handoff.policy.after_turn)
        decision = handoff.policy.explicit_request(times_asked(tracker), membership(tracker))
        offered = handoff.take_offer(tracker.sender_id)
        asked_in_words = handoff.policy.asks_for_person(typed_text(tracker))  # "那帮我转人工吧": asked, not a yes
        if offered and decision.rule is None and not asked_in_words:  # "yes" to the bot's offer: its reason
            decision = Escalate(offered, None, decision.priority, {**decision.detail, "accepted_offer": True})
        outcome = await handoff.escalate(tracker.sender_id, decision, facts(tracker))
        say(dispatcher, outcome.messages)
        return []
