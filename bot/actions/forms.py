"""Form validation: parse what the customer typed, verify identity, apply the store's policy.

Every order form asks for the order id and then the email or username on file (ABCD's
'Validate Purchase'). A customer verified once in the conversation is not asked again for
another of their own orders. Any ten digits are taken as an order id and the identity is checked
with it: "no such order" and "not this order's customer" are one failure with one answer, so the
chat tells nobody which order ids exist. Failures are counted in the database per order id and per
sender (``store.verification``): three within the window lock both, across forms and conversations,
and while locked nothing is checked. Three failures in one form end it politely; a policy refusal
(e.g. cancelling a shipped order) is explained and ends it too.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from rasa_sdk import Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.forms import REQUESTED_SLOT, FormValidationAction
from rasa_sdk.types import DomainDict

from bot.actions import change_of_mind, extract, identity, knowledge
from bot.actions.runtime import services
from conversations.labels import MEMBERSHIP, STATUS, label
from store import policies
from store.service import OrderView
from store.verification import VerificationOutcome

Slots = dict[str, Any]
T = TypeVar("T")


def refusal_vars(order: OrderView, detail: dict[str, Any], lang: str) -> dict[str, Any]:
    """Template variables shared by every refusal message."""
    return {
        "order_id": order.order_id,
        "status": label(STATUS, str(order.status), lang),
        "since": detail.get("since", ""),
        "days": detail.get("window_days", ""),
        "membership": label(MEMBERSHIP, str(order.customer.membership_level), lang),
        "carrier": order.carrier or "",
        "tracking_number": order.tracking_number or "",
        "shipment": shipment(order, lang),
    }


# "has already shipped (UPS, tracking number 1Z…)": where the parcel is, said with the refusal.
_SHIPMENT = {"en": " ({carrier}tracking number {number})", "zh": "（{carrier}运单号 {number}）",
             "ru": " ({carrier}трек-номер {number})"}
_COMMA = {"en": ", ", "zh": "，", "ru": ", "}


def shipment(order: OrderView, lang: str) -> str:
    """The carrier and tracking number of a shipped order in the customer's language; "" if none."""
    if not order.tracking_number:
        return ""
    lang = lang if lang in _SHIPMENT else "en"
    carrier = f"{order.carrier}{_COMMA[lang]}" if order.carrier else ""
    return _SHIPMENT[lang].format(carrier=carrier, number=order.tracking_number)


def entity_text(tracker: Tracker, entity: str, slot_value: Any) -> str | None:
    """The customer's words for a free-text entity (an address, a reason).

    The CRF extractor can split one address into several entities ("Москва", "ул", "Тверская");
    the text from the first one's start to the last one's end is what the customer wrote.
    """
    latest = tracker.latest_message or {}
    spans = [e for e in latest.get("entities") or [] if e.get("entity") == entity and e.get("start") is not None]
    text = latest.get("text") or ""
    if len(spans) > 1 and text:
        return text[min(e["start"] for e in spans) : max(e["end"] for e in spans)].strip() or None
    return extract.first_value(slot_value)


def parsed(
    slot_value: Any, parse: Callable[[Any], T | None], invalid: str, dispatcher: CollectingDispatcher
) -> T | None:
    """``parse(slot_value)``; when it finds nothing, the customer is told so with the response ``invalid``."""
    value = parse(slot_value)
    if value is None:
        dispatcher.utter_message(response=invalid)
    return value


def window_start(order: OrderView) -> datetime:
    return order.delivered_at or order.ordered_at


class OrderFormValidator(FormValidationAction, ABC):
    """Shared validation of the order forms; subclasses name the form and add its policy check."""

    @abstractmethod
    def name(self) -> str: ...

    def form_name(self) -> str:
        return self.name().removeprefix("validate_")

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        """A change of mind ends the form with nothing kept (``change_of_mind``); a sender locked out
        of verification is told so at once, before being asked for anything."""
        ended = change_of_mind.guard(tracker, dispatcher, self.form_name(), digress=knowledge.answer_inline)
        if ended is not None:
            return ended
        if not tracker.get_slot("task_blocked") and identity.verified_order(tracker) is None:
            until = identity.guard().locked_until(tracker.sender_id)
            if until is not None:
                return [SlotSet(k, v) for k, v in self._locked(until, dispatcher, tracker).items()] + [
                    SlotSet(REQUESTED_SLOT, None)
                ]
        return await super().run(dispatcher, tracker, domain)

    async def required_slots(
        self,
        domain_slots: list[str],
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> list[str]:
        """An empty list ends the form: after too many failures or a policy refusal."""
        if tracker.get_slot("task_blocked"):
            return []
        if (tracker.get_slot("failed_attempts") or 0) >= services().settings.max_verification_attempts:
            return []
        return domain_slots

    def policy_check(self, order: OrderView, dispatcher: CollectingDispatcher, tracker: Tracker) -> Slots:
        """Run once the customer is verified; return ``{"task_blocked": True}`` to refuse."""
        return {}

    # --- helpers -----------------------------------------------------------------------------
    def _failure(self, tracker: Tracker, slots: Slots) -> Slots:
        attempts = (tracker.get_slot("failed_attempts") or 0) + 1
        return {**slots, "failed_attempts": attempts}

    def _locked(self, until: datetime | None, dispatcher: CollectingDispatcher, tracker: Tracker) -> Slots:
        """No verification while locked: say so plainly (wait, or ask for a person) and end the form."""
        dispatcher.utter_message(response="utter_verification_locked", minutes=identity.minutes_left(until))
        return {"task_blocked": True, "verified": False, "customer_identifier": None}

    def _verified(self, order: OrderView, username: str, dispatcher: CollectingDispatcher, tracker: Tracker) -> Slots:
        slots: Slots = {
            "order_id": order.order_id,
            "customer_identifier": username,
            "verified": True,
            "verified_username": username,
            "failed_attempts": 0,
        }
        return {**slots, **self.policy_check(order, dispatcher, tracker)}

    def _attempt(self, order_id: str, ident: str, dispatcher: CollectingDispatcher, tracker: Tracker) -> Slots:
        """One counted try. "No such order" and "not this order's customer" get the same answer."""
        result = identity.guard().verify(order_id, ident, tracker.sender_id)
        if result.outcome is VerificationOutcome.LOCKED:
            return {"order_id": order_id, **self._locked(result.locked_until, dispatcher, tracker)}
        if result.outcome is VerificationOutcome.VERIFIED and result.customer is not None:
            order = services().orders.get_order(order_id)
            if order is not None:
                return self._verified(order, result.customer.username, dispatcher, tracker)
        dispatcher.utter_message(response="utter_verification_failed")
        slots = self._failure(tracker, {"order_id": order_id, "customer_identifier": None, "verified": False})
        form_ends = slots["failed_attempts"] >= services().settings.max_verification_attempts
        if result.locked_until is not None and not form_ends:  # locked by earlier tries (another form, sender)
            return {**slots, **self._locked(result.locked_until, dispatcher, tracker)}
        return slots

    # --- slot validators ---------------------------------------------------------------------
    def validate_order_id(
        self, slot_value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Slots:
        order_id = parsed(slot_value, extract.order_id, "utter_invalid_order_id", dispatcher)
        if order_id is None:
            return self._failure(tracker, {"order_id": None})
        # Whether the order exists is not said here: any ten digits get the same next question.
        until = identity.guard().locked_until(tracker.sender_id, order_id)
        if until is not None:
            return {"order_id": order_id, **self._locked(until, dispatcher, tracker)}
        proven = tracker.get_slot("verified_username")
        order = services().orders.get_order(order_id) if proven else None
        if order is not None and identity.owns(order, proven):  # verified earlier: their own order
            return self._verified(order, order.customer.username, dispatcher, tracker)
        slots: Slots = {"order_id": order_id, "verified": False}
        given_now = "customer_identifier" in tracker.slots_to_validate()
        if not given_now:
            known = extract.identifier(tracker.get_slot("customer_identifier"))
            if known and policies.normalise_identifier(known) != policies.normalise_identifier(proven):
                return self._attempt(order_id, known, dispatcher, tracker)  # given before the order id
            slots["customer_identifier"] = None
        return slots

    def validate_customer_identifier(
        self, slot_value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Slots:
        if tracker.get_slot("requested_slot") != "customer_identifier" and identity.verified_order(tracker):
            # Verified already: a word with digits later in the form ("YO21" in a postcode) is not a
            # new identity to check.
            return {"customer_identifier": tracker.get_slot("verified_username")}
        ident = extract.identifier(slot_value)
        order_id = extract.order_id(tracker.get_slot("order_id"))
        if order_id is None:
            # Given before the order id: keep it and verify once the order id arrives.
            return {"customer_identifier": ident}
        if tracker.get_slot("task_blocked"):  # the order id's validation found a lock
            return {"customer_identifier": None}
        if ident is None:
            corrected = extract.order_id(slot_value)
            if corrected is not None:  # another order number, not an identity: ask again, for that order
                if "order_id" in tracker.slots_to_validate():  # the NLU found it: validated already
                    return {"customer_identifier": None}
                return {"customer_identifier": None, **self.validate_order_id(corrected, dispatcher, tracker, domain)}
            # no email or username in it ("对 取消" to a question not asked): nothing was checked
            dispatcher.utter_message(response="utter_invalid_identifier")
            return self._failure(tracker, {"customer_identifier": None, "verified": False})
        return self._attempt(order_id, ident, dispatcher, tracker)


class ValidateOrderStatusForm(OrderFormValidator):
    def name(self) -> str:
        return "validate_order_status_form"


class ValidateTrackingForm(OrderFormValidator):
    def name(self) -> str:
        return "validate_tracking_form"


class ValidateRefundStatusForm(OrderFormValidator):
    def name(self) -> str:
        return "validate_refund_status_form"
