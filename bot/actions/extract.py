"""Pull structured values out of what a customer typed when the NLU gave us free text.

Customers answer "what's your order number?" with "it's 334 891 7502 I think" or "订单号３３４８９１７５０２",
so the validators search the text rather than trusting it whole.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from store.policies import RefundMethod, parse_refund_method

_ORDER_ID = re.compile(r"(?<!\d)(\d(?:[\s-]?\d){9})(?!\d)")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_ASCII_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{2,}")

# Checked in order: the more specific wording first ("gift card" before "card").
_METHOD_WORDS: tuple[tuple[RefundMethod, tuple[str, ...]], ...] = (
    (RefundMethod.GIFT_CARD, ("gift", "礼品卡", "禮品卡", "подароч")),
    (RefundMethod.STORE_CREDIT, ("store credit", "balance", "add value", "account credit", "余额", "餘額", "баланс", "бонус")),
    (RefundMethod.PAPER_CHECK, ("check", "cheque", "支票", "чек")),
    (RefundMethod.CREDIT_CARD, ("credit", "card", "visa", "master", "信用卡", "银行卡", "銀行卡", "卡", "карт")),
)


def typed_text(tracker: Any) -> str:
    """The message as the customer typed it (the gateway passes Traditional Chinese to the NLU as
    Simplified and the typed text in the metadata): what is stored in an order is what they wrote."""
    message = tracker.latest_message or {}
    typed = (message.get("metadata") or {}).get("typed_text")
    return typed if isinstance(typed, str) and typed else message.get("text") or ""


def first_value(value: Any) -> str | None:
    """Slots filled by two extractors arrive as a list; the first value is the one we use."""
    if isinstance(value, list):
        value = value[0] if value else None
    if value is None:
        return None
    return unicodedata.normalize("NFKC", str(value)).strip() or None


def order_id(value: Any) -> str | None:
    text = first_value(value)
    if not text:
        return None
    match = _ORDER_ID.search(text)
    return re.sub(r"[\s-]", "", match.group(1)) if match else None


def identifier(value: Any) -> str | None:
    """An email if there is one, else the most username-like word (one with a digit preferred).

    An order number is never an identifier: in "sorry, it's order 3348917502" the customer corrects
    the order, so with an order number in the text only an email or a word with digits counts.
    """
    text = first_value(value)
    if not text:
        return None
    email = _EMAIL.search(text)
    if email:
        return email.group(0)
    without_orders = _ORDER_ID.sub(" ", text)
    # a word of digits alone is a phone number, a postcode or a PIN ("我電話係 9123 4567"), not a username
    words = [w for w in _ASCII_WORD.findall(without_orders) if any(c.isalpha() for c in w)]
    with_digits = [w for w in words if any(c.isdigit() for c in w)]
    if without_orders != text:
        words = with_digits
    if not words:
        return None
    return (with_digits or words)[-1].strip(".-")


def refund_method(value: Any) -> RefundMethod | None:
    text = first_value(value)
    if not text:
        return None
    exact = parse_refund_method(text)
    if exact:
        return exact
    lowered = text.casefold()
    for method, words in _METHOD_WORDS:
        if any(word in lowered for word in words):
            return method
    return None
