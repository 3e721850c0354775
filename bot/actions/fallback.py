"""Localised first stage of Rasa's two-stage fallback.

Rasa's built-in ``action_default_ask_affirmation`` asks "Did you mean 'track_shipment'?" in
English with the raw intent name; this one describes the guessed intent in the customer's
language, with Yes/No buttons that the two-stage fallback understands.
"""

from __future__ import annotations

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from bot.actions.forms import language
from bot.actions.labels import INTENT, label

FALLBACK_INTENT = "nlu_fallback"


def guessed_intent(tracker: Tracker) -> str:
    """The best intent that is not the fallback itself."""
    latest = tracker.latest_message or {}
    for candidate in latest.get("intent_ranking") or []:
        name = candidate.get("name")
        if name and name != FALLBACK_INTENT:
            return str(name)
    return "out_of_scope"


class ActionDefaultAskAffirmation(Action):
    def name(self) -> str:
        return "action_default_ask_affirmation"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        intent = guessed_intent(tracker)
        dispatcher.utter_message(
            response="utter_ask_affirmation",
            intent_name=intent,
            intent_label=label(INTENT, intent, language(tracker)),
        )
        return []
