"""Values pulled from free text by the form validators (bot/actions/extract.py)."""

from __future__ import annotations

import pytest

from bot.actions import extract
from store.policies import RefundMethod


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("3348917502", "3348917502"),
        ("it's 334 891 7502 I think", "3348917502"),
        ("订单号３３４８９１７５０２", "3348917502"),  # full-width digits
        ("заказ №3348-917-502", "3348917502"),
        (["3348917502", "3348917502"], "3348917502"),  # two extractors, one value
        ("12345", None),
        ("call me at 33489175021", None),  # 11 digits is not an order id
        (None, None),
    ],
)
def test_order_id(text: object, expected: str | None) -> None:
    assert extract.order_id(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cminh730@email.com", "cminh730@email.com"),
        ("my email is CMinh730@Email.com thanks", "CMinh730@Email.com"),
        ("用户名是cminh730", "cminh730"),
        ("my username is cminh730", "cminh730"),
        ("логин jdoe55", "jdoe55"),
        ("不知道", None),
        ("我電話係 9123 4567", None),  # a phone number, not a username
        ("it's 55501234", None),
    ],
)
def test_identifier(text: str, expected: str | None) -> None:
    assert extract.identifier(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("gift_card", RefundMethod.GIFT_CARD),
        ("back to my credit card please", RefundMethod.CREDIT_CARD),
        ("a gift card is fine", RefundMethod.GIFT_CARD),
        ("store credit", RefundMethod.STORE_CREDIT),
        ("退到信用卡", RefundMethod.CREDIT_CARD),
        ("礼品卡", RefundMethod.GIFT_CARD),
        ("на баланс магазина", RefundMethod.STORE_CREDIT),
        ("бумажным чеком", RefundMethod.PAPER_CHECK),
        ("no idea", None),
    ],
)
def test_refund_method(text: str, expected: RefundMethod | None) -> None:
    assert extract.refund_method(text) == expected
