"""The forms that change something: refund, return, cancellation, address, password reset.

Each ends with the same last step, ``confirm_write``: the change is stated back with its exact
values (``ActionAskConfirmWrite``) and done only on a clear yes (``bot.actions.confirm``). A no leaves
everything as it was; an answer that is neither is asked again, and after three the form ends with
nothing done. A message at that step that corrects a value ("oh wait, it's 57 Water St", "make it
store credit") replaces the value and the question is asked again with it.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.forms import FormValidationAction
from rasa_sdk.types import DomainDict

from bot.actions import address, change_of_mind, extract, identity, knowledge
from bot.actions.extract import typed_text
from bot.actions.forms import OrderFormValidator, Slots, entity_text, parsed, refusal_vars, window_start
from bot.actions.orders import money, order_vars, say_refund_status
from bot.actions.runtime import services
from conversations import confirm
from conversations.labels import CONFIRM_BUTTONS, REFUND_METHOD, label, language
from store import policies
from store.service import OrderView

CONFIRM_SLOT = change_of_mind.CONFIRM_SLOT
MAX_UNCLEAR_ANSWERS = 3
# What each write form does, the verb that is a yes to it, and what is said on a no.
TASKS: dict[str, tuple[str, str]] = {
    "cancel_form": ("cancel", "utter_cancel_kept"),
    "address_form": ("address", "utter_address_kept"),
    "refund_form": ("refund", "utter_refund_not_submitted"),
    "return_form": ("return", "utter_return_not_started"),
    "password_reset_form": ("reset", "utter_reset_not_sent"),
}


MAX_REASON_CHARS = 500
# An answer to "why?" this short that names a refund method is the method ("退返張信用卡度", "to my card pls").
SHORT_ANSWER_WORDS = 4
SHORT_ANSWER_HAN = 8


def value_before(tracker: Tracker, slot: str) -> Any:
    """The slot's value before the customer's latest message (Rasa has already put what it extracted
    from that message into the slot when the validator runs)."""
    after_message = True
    for event in reversed(tracker.events):
        if event.get("event") == "user":
            after_message = False
        elif not after_message and event.get("event") == "slot" and event.get("name") == slot:
            return event.get("value")
    return None


def reason_given(tracker: Tracker, slot: str, slot_value: Any) -> str | None:
    """Asked for the reason, the customer's whole answer is the reason, in their words (a bare yes or
    no is not one); given inside the request ("refund 5120648393, the zip broke"), the clause the
    reason extractor found."""
    if tracker.get_slot("requested_slot") == slot:
        reason = " ".join(typed_text(tracker).split())
        if confirm.only_yes_or_no(reason):  # "why?" — "ok" / "没问题" / "нет": no reason given, asked again
            return None
    else:
        reason = entity_text(tracker, "reason", slot_value) or ""
    return reason[:MAX_REASON_CHARS] or None


def stated_reason(tracker: Tracker, slot: str) -> Slots:
    """The reason slot from an answer to "why?" that the NLU read as a question but is a statement
    (the slot's own mapping skips ``ask_question`` messages)."""
    if tracker.get_slot("requested_slot") != slot or not change_of_mind.states_the_reason(tracker):
        return {}
    return {slot: reason_given(tracker, slot, None)}


def short_answer(text: str) -> bool:
    """A few words only: an answer that names a refund method and little else is about the method."""
    han = len(re.findall(r"[\u3400-\u9fff]", text))
    return len(text.split()) <= SHORT_ANSWER_WORDS and han <= SHORT_ANSWER_HAN


def refuse(
    decision: policies.PolicyDecision,
    responses: dict[policies.DecisionCode, str],
    other: str,
    order: OrderView,
    dispatcher: CollectingDispatcher,
    tracker: Tracker,
) -> Slots:
    """A refusal by the store's policy is said (``responses[code]``, else ``other``, filled with the
    decision's dates and window) and blocks the task; {} when the policy allows it."""
    if decision.allowed:
        return {}
    response = responses.get(decision.code, other)
    dispatcher.utter_message(response=response, **refusal_vars(order, dict(decision.detail), language(tracker)))
    return {"task_blocked": True}


def window_terms(order: OrderView) -> dict[str, Any]:
    """What a refund or a return is decided on (``policies.check_refund`` / ``check_return``): the
    order's status, the customer's membership, and the window from delivery (or order) until now."""
    return {
        "status": order.status,
        "membership": order.customer.membership_level,
        "since": window_start(order),
        "now": datetime.now(UTC),
    }


def window_refusals(task: str) -> dict[policies.DecisionCode, str]:
    """The refusals a refund and a return share (``utter_<task>_refused_…``): past the membership's
    window, an order not shipped yet (cancelled instead) or still on its way."""
    return {
        policies.DecisionCode.OUTSIDE_WINDOW: f"utter_{task}_refused_outside_window",
        policies.DecisionCode.CANCEL_INSTEAD: f"utter_{task}_refused_not_delivered",
        policies.DecisionCode.NOT_DELIVERED_YET: f"utter_{task}_refused_in_transit",
    }


def refuse_after_shipping(
    decision: policies.PolicyDecision, task: str, order: OrderView, dispatcher: CollectingDispatcher, tracker: Tracker
) -> Slots:
    """Only processing orders can be cancelled or re-addressed: say why not (``utter_<task>_refused_…``)."""
    shipped = f"utter_{task}_refused_shipped"
    responses = {policies.DecisionCode.ALREADY_SHIPPED: shipped, policies.DecisionCode.ALREADY_DELIVERED: shipped}
    if task == "cancel":  # "I cancelled something, can you check it": it is
        responses[policies.DecisionCode.ALREADY_CANCELLED] = "utter_cancel_already_done"
    return refuse(decision, responses, f"utter_{task}_refused_other", order, dispatcher, tracker)


class ConfirmedWrite:
    """The confirmation step shared by the write forms (a mixin for their validators)."""

    def form_name(self) -> str:
        raise NotImplementedError

    def correction(self, tracker: Tracker, dispatcher: CollectingDispatcher) -> Slots:
        """New values for the form's slots found in an answer to the confirmation; {} if none."""
        return {}

    def validate_confirm_write(
        self, slot_value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Slots:
        task, kept = TASKS[self.form_name()]
        turn = change_of_mind.latest(tracker)
        corrected = self.correction(tracker, dispatcher) if not turn.text.startswith("/") else {}
        if corrected:
            return {**corrected, CONFIRM_SLOT: None}
        answer = confirm.read(turn.text, turn.intent, turn.confidence, task=task)
        if answer is confirm.Answer.YES:
            return {CONFIRM_SLOT: True}
        tries = int(tracker.get_slot("failed_attempts") or 0) + 1
        if answer is confirm.Answer.NO or tries >= MAX_UNCLEAR_ANSWERS:
            dispatcher.utter_message(response=kept, order_id=tracker.get_slot("order_id") or "")
            return {CONFIRM_SLOT: False, "task_blocked": True, "failed_attempts": 0}
        dispatcher.utter_message(response="utter_confirm_unclear")
        return {CONFIRM_SLOT: None, "failed_attempts": tries}


class WriteFormValidator(ConfirmedWrite, OrderFormValidator):
    """An order form that writes: verification, the task's own slots, then the confirmation."""

    def form_name(self) -> str:
        return OrderFormValidator.form_name(self)


class ValidateRefundForm(WriteFormValidator):
    def name(self) -> str:
        return "validate_refund_form"

    def policy_check(self, order: OrderView, dispatcher: CollectingDispatcher, tracker: Tracker) -> Slots:
        decision = policies.check_refund(
            **window_terms(order), amount=order.total, auto_limit=services().settings.auto_refund_limit
        )
        responses = {**window_refusals("refund"), policies.DecisionCode.CANCELLED: "utter_refund_refused_cancelled"}
        already = (policies.DecisionCode.ALREADY_REFUNDED, policies.DecisionCode.REFUND_ALREADY_REQUESTED)
        if decision.code in already and say_refund_status(order, dispatcher, tracker):  # where it stands
            return {"task_blocked": True}
        return refuse(decision, responses, "utter_refund_refused_already", order, dispatcher, tracker)

    def correction(self, tracker: Tracker, dispatcher: CollectingDispatcher) -> Slots:
        method = extract.refund_method(typed_text(tracker))
        if method is None or str(method) == value_before(tracker, "refund_method"):
            return {}
        return {"refund_method": str(method)}

    async def extract_refund_reason(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Slots:
        return stated_reason(tracker, "refund_reason")

    def validate_refund_reason(
        self, slot_value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Slots:
        # Asked why, told where the money should go ("退返張信用卡度", "to my card please"): that is the
        # method, not the reason; the reason is asked again.
        typed = " ".join(typed_text(tracker).split())
        method = extract.refund_method(typed) if tracker.get_slot("requested_slot") == "refund_reason" else None
        # (the method's own mapping may have filled it from this very message: what counts is before it)
        if method is not None and value_before(tracker, "refund_method") is None and short_answer(typed):
            return {"refund_reason": None, "refund_method": str(method)}
        return {"refund_reason": reason_given(tracker, "refund_reason", slot_value)}

    def validate_refund_method(
        self, slot_value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Slots:
        method = parsed(slot_value, extract.refund_method, "utter_invalid_refund_method", dispatcher)
        return {"refund_method": None if method is None else str(method)}


class ValidateReturnForm(WriteFormValidator):
    def name(self) -> str:
        return "validate_return_form"

    def policy_check(self, order: OrderView, dispatcher: CollectingDispatcher, tracker: Tracker) -> Slots:
        decision = policies.check_return(**window_terms(order), has_open_return=order.return_request is not None)
        responses = {
            **window_refusals("return"),
            policies.DecisionCode.RETURN_ALREADY_STARTED: "utter_return_already_started",
        }
        return refuse(decision, responses, "utter_return_refused_other", order, dispatcher, tracker)

    async def extract_return_reason(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Slots:
        return stated_reason(tracker, "return_reason")

    def validate_return_reason(
        self, slot_value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Slots:
        return {"return_reason": reason_given(tracker, "return_reason", slot_value)}


class ValidateCancelForm(WriteFormValidator):
    def name(self) -> str:
        return "validate_cancel_form"

    def policy_check(self, order: OrderView, dispatcher: CollectingDispatcher, tracker: Tracker) -> Slots:
        return refuse_after_shipping(policies.can_cancel(order.status), "cancel", order, dispatcher, tracker)


class ValidateAddressForm(WriteFormValidator):
    def name(self) -> str:
        return "validate_address_form"

    def policy_check(self, order: OrderView, dispatcher: CollectingDispatcher, tracker: Tracker) -> Slots:
        return refuse_after_shipping(policies.can_change_address(order.status), "address", order, dispatcher, tracker)

    def validate_new_address(
        self, slot_value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Slots:
        """The whole address as typed (minus "my new address is"), checked for the shape of one."""
        found = address.extract(typed_text(tracker))
        if found is None and tracker.get_slot("requested_slot") != "new_address":  # given with the request
            found = address.extract(entity_text(tracker, "address", slot_value) or "")
        decision = policies.check_address(found or "")
        if not decision.allowed:
            dispatcher.utter_message(response="utter_invalid_address")
            return {"new_address": None}
        return {"new_address": decision.detail["address"]}

    def correction(self, tracker: Tracker, dispatcher: CollectingDispatcher) -> Slots:
        found = address.extract(typed_text(tracker))
        if found is None or found == value_before(tracker, "new_address"):
            return {}
        return {"new_address": policies.check_address(found).detail["address"]}


class ValidatePasswordResetForm(ConfirmedWrite, FormValidationAction):
    def name(self) -> str:
        return "validate_password_reset_form"

    def form_name(self) -> str:
        return "password_reset_form"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        ended = change_of_mind.guard(tracker, dispatcher, self.form_name(), digress=knowledge.answer_inline)
        if ended is not None:
            return ended
        return await super().run(dispatcher, tracker, domain)

    def correction(self, tracker: Tracker, dispatcher: CollectingDispatcher) -> Slots:
        ident = extract.identifier(typed_text(tracker)) if "@" in typed_text(tracker) else None
        if ident is None or ident == value_before(tracker, "account_identifier"):
            return {}
        return {"account_identifier": ident}

    def validate_account_identifier(
        self, slot_value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> Slots:
        ident = parsed(slot_value, extract.identifier, "utter_ask_account_identifier", dispatcher)
        return {"account_identifier": ident}


class ActionAskRefundMethod(Action):
    """Asks for the refund method with one button per method, titled in the customer's language."""

    def name(self) -> str:
        return "action_ask_refund_method"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        lang = language(tracker)
        buttons = [
            {"title": label(REFUND_METHOD, str(method), lang), "payload": f'/inform{{"refund_method":"{method}"}}'}
            for method in policies.RefundMethod
        ]
        dispatcher.utter_message(response="utter_ask_refund_method", buttons=buttons)
        return []


class ActionAskConfirmWrite(Action):
    """States the change back with its exact values, with Yes/No buttons, before anything is written."""

    def name(self) -> str:
        return "action_ask_confirm_write"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> list[EventType]:
        form = (tracker.active_loop or {}).get("name")
        lang = language(tracker)
        task = TASKS.get(form or "", ("cancel", ""))[0]
        buttons = [
            {"title": label(CONFIRM_BUTTONS, f"{task}.yes", lang), "payload": "/affirm"},
            {"title": label(CONFIRM_BUTTONS, f"{task}.no", lang), "payload": "/deny"},
        ]
        if form == "password_reset_form":
            account = extract.identifier(tracker.get_slot("account_identifier")) or ""
            dispatcher.utter_message(response="utter_confirm_reset", account=account, buttons=buttons)
            return []
        order = identity.verified_order(tracker)
        if order is None or form not in TASKS:  # verification is re-checked when the write runs
            dispatcher.utter_message(response="utter_confirm_unclear", buttons=buttons)
            return []
        values = self.values(form, order, tracker, lang)
        dispatcher.utter_message(response=f"utter_confirm_{TASKS[form][0]}", buttons=buttons, **values)
        return []

    @staticmethod
    def values(form: str, order: OrderView, tracker: Tracker, lang: str) -> dict[str, Any]:
        values = order_vars(order)
        if form == "address_form":
            values["address"] = tracker.get_slot("new_address") or ""
        elif form == "refund_form":
            values["amount"] = money(order.total, order.currency)
            values["method"] = label(REFUND_METHOD, str(tracker.get_slot("refund_method") or ""), lang)
            values["reason"] = tracker.get_slot("refund_reason") or ""
        elif form == "return_form":
            values["reason"] = tracker.get_slot("return_reason") or ""
        return values
