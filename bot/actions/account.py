"""Account actions. The reply never says whether an account exists, so the chat can't be used
to discover which emails are customers (ABCD 'Recover Password' sends the link to the email
on file, never into the chat)."""

from __future__ import annotations

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, FollowupAction, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from bot.actions import extract
from bot.actions.runtime import services


class ActionResetPassword(Action):
    def name(self) -> str:
        return "action_reset_password"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        # The link goes only to the address on file, and the store sends at most one per account per
        # quarter hour (store.service), so neither the chat nor a forged tracker can flood a mailbox.
        identifier = extract.identifier(tracker.get_slot("account_identifier"))
        done = [SlotSet("account_identifier", None), SlotSet("confirm_write", None), FollowupAction("action_listen")]
        if tracker.get_slot("confirm_write") is not True:  # only after a yes to the address stated back
            return done
        if identifier:
            services().orders.request_password_reset(identifier)
        dispatcher.utter_message(response="utter_password_reset_sent", identifier=identifier or "")
        return done
