"""Every branch of the store's business rules (pure functions: no database, fixed clock)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from store.policies import (
    ADDRESS_MAX_CHARS,
    DecisionCode,
    MembershipLevel,
    OrderStatus,
    PolicyDecision,
    PolicyViolation,
    RefundMethod,
    can_cancel,
    can_change_address,
    check_address,
    check_refund,
    check_return,
    identity_matches,
    normalise_order_id,
    parse_refund_method,
    refund_window_days,
    return_window_days,
    within_window,
)

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
LIMIT = Decimal("150.00")
SECOND = timedelta(seconds=1)
WINDOWS = {"guest": 30, "bronze": 90, "silver": 180, "gold": None}


# --- windows ----------------------------------------------------------------------------------


@pytest.mark.parametrize("level,days", WINDOWS.items())
def test_windows_follow_abcd_membership_privileges(level: str, days: int | None) -> None:
    assert return_window_days(level) == days
    assert refund_window_days(MembershipLevel(level)) == days


def test_unknown_membership_level_is_an_error_not_a_default() -> None:
    with pytest.raises(ValueError):
        return_window_days("platinum")


def test_within_window_is_inclusive_and_unlimited_for_none() -> None:
    since = NOW - timedelta(days=30)
    assert within_window(since, NOW, 30)
    assert not within_window(since - SECOND, NOW, 30)
    assert within_window(NOW - timedelta(days=10_000), NOW, None)


@pytest.mark.parametrize("level", ["guest", "bronze", "silver"])
def test_refund_window_boundary_per_level(level: str) -> None:
    days = WINDOWS[level]
    assert days is not None
    on_edge = check_refund("delivered", level, NOW - timedelta(days=days), Decimal("50"), NOW, LIMIT)
    assert on_edge.allowed and on_edge.code == DecisionCode.OK
    past = check_refund("delivered", level, NOW - timedelta(days=days) - SECOND, Decimal("50"), NOW, LIMIT)
    assert not past.allowed and past.code == "outside_window"
    assert past.detail["window_days"] == days
    assert past.detail["membership_level"] == level
    assert past.detail["deadline"] == (NOW - SECOND).date().isoformat()


@pytest.mark.parametrize("level", ["guest", "bronze", "silver"])
def test_return_window_boundary_per_level(level: str) -> None:
    days = WINDOWS[level]
    assert days is not None
    assert check_return("delivered", level, NOW - timedelta(days=days), NOW).code == "ok"
    past = check_return("delivered", level, NOW - timedelta(days=days) - SECOND, NOW)
    assert not past.allowed and past.code == "outside_window"


def test_gold_has_no_window() -> None:
    long_ago = NOW - timedelta(days=3650)
    refund = check_refund("delivered", "gold", long_ago, Decimal("50"), NOW, LIMIT)
    assert refund.allowed and refund.detail["window_days"] is None and refund.detail["deadline"] is None
    assert check_return("delivered", "gold", long_ago, NOW).allowed


def test_window_is_counted_from_the_date_passed_in() -> None:
    """The service passes the delivery date; a late delivery keeps the window open longer."""
    ordered, delivered = NOW - timedelta(days=40), NOW - timedelta(days=20)
    assert not check_refund("delivered", "guest", ordered, Decimal("10"), NOW, LIMIT).allowed
    assert check_refund("delivered", "guest", delivered, Decimal("10"), NOW, LIMIT).allowed


# --- refunds ----------------------------------------------------------------------------------


# Why a refund or a return of an order in each status but delivered is refused.
NOT_DELIVERED = [
    ("cancelled", "cancelled"),
    ("refunded", "already_refunded"),
    ("refund_requested", "refund_already_requested"),
    ("processing", "cancel_instead"),
    ("shipped", "not_delivered_yet"),
]


@pytest.mark.parametrize("status,code", NOT_DELIVERED)
def test_refund_refused_unless_delivered(status: str, code: str) -> None:
    decision = check_refund(status, "gold", NOW - timedelta(days=1), Decimal("20"), NOW, LIMIT)
    assert decision == PolicyDecision(False, False, DecisionCode(code), decision.detail)
    assert not decision


def test_refund_for_processing_order_suggests_cancellation() -> None:
    decision = check_refund("processing", "bronze", NOW, Decimal("20"), NOW, LIMIT)
    assert decision.detail["suggestion"] == "cancel_order"


@pytest.mark.parametrize(
    "amount,needs_approval,code",
    [
        (Decimal("149.99"), False, "ok"),
        (Decimal("150.00"), False, "ok"),
        (Decimal("150.01"), True, "needs_approval"),
        (Decimal("1200"), True, "needs_approval"),
    ],
)
def test_refund_above_auto_limit_needs_approval(amount: Decimal, needs_approval: bool, code: str) -> None:
    decision = check_refund("delivered", "bronze", NOW - timedelta(days=3), amount, NOW, LIMIT)
    assert decision.allowed
    assert decision.needs_approval is needs_approval
    assert decision.code == code
    assert decision.detail["amount"] == str(amount)
    assert decision.detail["auto_limit"] == "150.00"


def test_auto_limit_comes_from_the_caller() -> None:
    since = NOW - timedelta(days=3)
    assert not check_refund("delivered", "silver", since, Decimal("60"), NOW, Decimal("100")).needs_approval
    assert check_refund("delivered", "silver", since, Decimal("60"), NOW, Decimal("50")).needs_approval


@pytest.mark.parametrize("amount", [Decimal("0"), Decimal("-5")])
def test_refund_of_nothing_is_refused(amount: Decimal) -> None:
    decision = check_refund("delivered", "gold", NOW, amount, NOW, LIMIT)
    assert not decision.allowed and decision.code == "invalid_amount"


def test_window_is_checked_before_the_amount() -> None:
    """An expired big refund is refused, not sent for approval."""
    decision = check_refund("delivered", "guest", NOW - timedelta(days=31), Decimal("999"), NOW, LIMIT)
    assert decision.code == "outside_window" and not decision.needs_approval


def test_enum_and_string_arguments_are_equivalent() -> None:
    since = NOW - timedelta(days=3)
    a = check_refund(OrderStatus.DELIVERED, MembershipLevel.SILVER, since, Decimal("10"), NOW, LIMIT)
    b = check_refund("delivered", "silver", since, Decimal("10"), NOW, LIMIT)
    assert a == b


# --- returns ----------------------------------------------------------------------------------


@pytest.mark.parametrize("status,code", NOT_DELIVERED)
def test_return_refused_unless_delivered(status: str, code: str) -> None:
    decision = check_return(status, "gold", NOW - timedelta(days=1), NOW)
    assert not decision.allowed and decision.code == code


def test_second_return_is_refused_while_one_is_open() -> None:
    decision = check_return("delivered", "gold", NOW - timedelta(days=1), NOW, has_open_return=True)
    assert not decision.allowed and decision.code == "return_already_started"


def test_return_inside_window_is_ok_and_never_needs_approval() -> None:
    decision = check_return("delivered", "bronze", NOW - timedelta(days=5), NOW)
    assert decision.allowed and not decision.needs_approval and decision.code == "ok"
    assert decision.detail["window_days"] == 90


# --- cancel and address -----------------------------------------------------------------------


def _before_shipping(cancelled: str) -> list[tuple[str, bool, str]]:
    """(status, allowed, code) of a change that can be made only before the order ships; ``cancelled``
    is the code for a cancelled order."""
    return [
        ("processing", True, "ok"),
        ("shipped", False, "already_shipped"),
        ("delivered", False, "already_delivered"),
        ("refund_requested", False, "already_delivered"),
        ("refunded", False, "already_delivered"),
        ("cancelled", False, cancelled),
    ]


@pytest.mark.parametrize("status,allowed,code", _before_shipping("already_cancelled"))
def test_can_cancel_only_before_shipping(status: str, allowed: bool, code: str) -> None:
    decision = can_cancel(status)
    assert bool(decision) is allowed and decision.code == code


@pytest.mark.parametrize("status,allowed,code", _before_shipping("cancelled"))
def test_can_change_address_only_before_shipping(status: str, allowed: bool, code: str) -> None:
    decision = can_change_address(status)
    assert bool(decision) is allowed and decision.code == code


def test_unknown_order_status_is_an_error() -> None:
    with pytest.raises(ValueError):
        can_cancel("lost")


def test_address_is_normalised() -> None:
    decision = check_address("  42 Elm Street,\n  Springfield   IL 62704 ")
    assert decision.allowed and decision.detail["address"] == "42 Elm Street, Springfield IL 62704"


def test_non_latin_address_is_accepted() -> None:
    assert check_address("北京市朝阳区建国路88号").allowed
    assert check_address("Москва, ул. Тверская, д. 7").allowed


@pytest.mark.parametrize(
    "text,problem",
    [
        ("", "empty"),
        ("   \n ", "empty"),
        ("12 Elm", "too_short"),
        ("1 Main St " * 30, "too_long"),
        ("12345 67890", "no_letters"),
        ("42 Elm Street\x00 Springfield", "control_characters"),
    ],
)
def test_bad_address_is_refused(text: str, problem: str) -> None:
    decision = check_address(text)
    assert not decision.allowed and decision.code == "invalid_address"
    assert decision.detail["problem"] == problem


def test_address_at_max_length_is_accepted() -> None:
    assert check_address("A" * ADDRESS_MAX_CHARS).allowed
    assert not check_address("A" * (ADDRESS_MAX_CHARS + 1)).allowed


# --- identity and parsing ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Customer:
    username: str
    email: str


CRYSTAL = _Customer("cminh730", "cminh730@email.com")


@pytest.mark.parametrize(
    "identifier",
    ["cminh730@email.com", "cminh730", " CMinh730@Email.COM ", "\tCMINH730\n"],
)
def test_identity_matches_email_or_username(identifier: str) -> None:
    assert identity_matches(CRYSTAL, identifier)


@pytest.mark.parametrize(
    "identifier",
    ["", "   ", None, "cminh731", "aphoenix939@email.com", "cminh730@email", "Crystal Minh", "3348917502"],
)
def test_identity_rejects_anything_else(identifier: str | None) -> None:
    assert not identity_matches(CRYSTAL, identifier)


@pytest.mark.parametrize(
    "text,expected",
    [
        ("3348917502", "3348917502"),
        (" 3348 917 502 ", "3348917502"),
        ("3348-917-502", "3348917502"),
        ("334891750", None),
        ("33489175021", None),
        ("33489l7502", None),
        ("", None),
        (None, None),
    ],
)
def test_normalise_order_id(text: str | None, expected: str | None) -> None:
    assert normalise_order_id(text) == expected


@pytest.mark.parametrize(
    "text,method",
    [
        ("credit_card", RefundMethod.CREDIT_CARD),
        ("Credit Card", RefundMethod.CREDIT_CARD),
        ("gift card", RefundMethod.GIFT_CARD),
        ("paper-check", RefundMethod.PAPER_CHECK),
        ("cheque", RefundMethod.PAPER_CHECK),
        ("add value", RefundMethod.STORE_CREDIT),
        ("store_credit", RefundMethod.STORE_CREDIT),
        (RefundMethod.GIFT_CARD, RefundMethod.GIFT_CARD),
        ("bitcoin", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_refund_method(text: str | None, method: RefundMethod | None) -> None:
    assert parse_refund_method(text) == method


def test_policy_violation_carries_code_and_detail() -> None:
    decision = check_refund("delivered", "guest", NOW - timedelta(days=60), Decimal("10"), NOW, LIMIT)
    exc = PolicyViolation.from_decision(decision)
    assert exc.code == "outside_window" and type(exc.code) is str
    assert exc.detail["window_days"] == 30
    assert str(exc).startswith("outside_window")
    assert str(PolicyViolation("order_not_found")) == "order_not_found"
