"""The widget in a real browser: Playwright driving Debian's Chromium against the live system.

On the demo page at a phone's width: open the chat, check an order's status in Chinese, click a
quick-reply button, reload and find the history, lose the connection while a message's reply is
on its way and reconnect without showing or processing anything twice, and see a bot/agent
message carrying ``<script>``/``<img onerror>`` rendered as inert text. A screenshot of each
stage is saved under tests/artifacts/ for review.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from channels.widget.identity import sender_for_token
from conversations.models import Conversation, Message
from tests.conftest import NO_CHROMIUM, LiveSystem, chromium_missing, screenshot

if chromium_missing():
    pytest.skip(NO_CHROMIUM, allow_module_level=True)

from playwright.sync_api import Browser, Page, WebSocketRoute, expect  # noqa: E402

XSS = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'
# Bot turns on a shared 2-core machine can take seconds (a cold NLU cache, other suites running):
# the assertions wait for what must appear, and fail after this long.
TIMEOUT_MS = 60_000
expect.set_options(timeout=TIMEOUT_MS)


class Relay:
    """Sits between the page and the gateway's socket (Playwright's WebSocket routing) so the test can
    drop the connection, or swallow the gateway's reply frames as a broken network would."""

    def __init__(self) -> None:
        self.routes: list[WebSocketRoute] = []
        self.swallow_replies = False
        self.swallowed: list[str] = []

    def __call__(self, ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()
        self.routes.append(ws)

        def to_page(message: str | bytes) -> None:
            if self.swallow_replies and isinstance(message, str) and '"type": "reply"' in message:
                self.swallowed.append(message)
                return
            ws.send(message)

        server.on_message(to_page)

    def drop(self) -> None:
        for ws in self.routes:
            ws.close(code=1001, reason="network dropped by the test")
        self.routes.clear()


def customer_bubbles(page: Page, text: str) -> int:
    return page.locator(".m.in").filter(has_text=text).count()


def inbound_count(live: LiveSystem, sender: str, text: str) -> int:
    rows = live.query(
        "SELECT count(*) FROM messages m JOIN conversations c ON c.id = m.conversation_id "
        "WHERE c.sender_id = :s AND m.direction = 'in' AND m.text = :t", s=sender, t=text,
    )
    return int(rows[0][0])


def say(page: Page, text: str) -> None:
    box = page.get_by_role("textbox", name="输入消息")
    box.fill(text)
    box.press("Enter")


def answered(page: Page) -> None:
    """Wait until every message the customer wrote has its reply (the widget's outbox is empty)."""
    page.wait_for_function("() => JSON.parse(localStorage.getItem('sbw:anon:outbox') || '[]').length === 0")
    expect(page.locator(".typing")).to_have_text("")


def cancellable_order(live: LiveSystem) -> tuple[str, str]:
    """A processing order of a generated (non-demo) customer: no other test touches it."""
    rows = live.query(
        "SELECT o.order_id, c.email FROM orders o JOIN customers c ON c.id = o.customer_id "
        "WHERE o.status = 'processing' AND c.username NOT IN "
        "('jwu477','cminh730','asanders308','dwilliams615','rdomingo118','aphoenix939','safzal207','czhang841',"
        "'jbanter553','nbouchard772') ORDER BY o.order_id LIMIT 1"
    )
    assert rows, "the seeded store has processing orders of generated customers"
    return str(rows[0][0]), str(rows[0][1])


def add_agent_message(live: LiveSystem, sender: str, text: str) -> None:
    """What the handoff module stores for an agent's reply (delivered live by the pusher, or from history)."""
    with Session(live.db) as db, db.begin():
        conv = db.scalar(select(Conversation).where(Conversation.sender_id == sender))
        assert conv is not None
        db.add(Message(
            conversation_id=conv.id, direction="out", type="agent", text=text, data={"buttons": [], "sources": []},
            language="zh", channel="widget", created_at=datetime.now(UTC),
        ))


def test_widget_end_to_end_in_chromium(live: LiveSystem, browser: Browser) -> None:
    context = browser.new_context(viewport={"width": 360, "height": 740}, locale="zh-CN")
    relay = Relay()
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.route_web_socket(re.compile(r"/api/v1/ws$"), relay)
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    try:
        run_conversation(live, page, relay)
    finally:
        context.close()
    assert errors == [], f"JavaScript errors on the page: {errors}"


def run_conversation(live: LiveSystem, page: Page, relay: Relay) -> None:
    page.goto(f"{live.url}/demo?lang=zh-Hans")
    launcher = page.get_by_role("button", name="打开聊天")
    launcher.click()
    expect(page.get_by_role("button", name="关闭聊天").first).to_have_attribute("aria-expanded", "true")
    log = page.get_by_role("log", name="对话记录")
    expect(log).to_contain_text("您好！有什么可以帮您？")  # the localised greeting
    token = page.evaluate("JSON.parse(localStorage.getItem('sbw:token'))")
    sender = sender_for_token(token)

    # --- an order status check in Chinese -------------------------------------------------------
    say(page, "我的订单到哪了")
    expect(log).to_contain_text("订单号")
    say(page, "3348917502")
    expect(log).to_contain_text("邮箱或用户名")
    say(page, "cminh730@email.com")
    expect(log).to_contain_text("发货，承运商")
    expect(page.get_by_role("status").first).to_contain_text("智能助手")
    screenshot(page, "widget-1-order-status")

    # --- a quick-reply button -------------------------------------------------------------------
    order_id, email = cancellable_order(live)
    say(page, f"我想取消订单 {order_id}")
    expect(log).to_contain_text("邮箱或用户名")
    say(page, email)
    keep = page.get_by_role("button", name="不取消了")
    expect(keep).to_be_enabled()
    screenshot(page, "widget-2-buttons")
    keep.click()
    expect(keep).to_be_disabled()  # quick replies are spent once answered
    assert customer_bubbles(page, "不取消了") == 1  # the button's title is what the customer "said"
    answered(page)
    rows = live.query("SELECT status FROM orders WHERE order_id = :o", o=order_id)
    assert rows[0][0] == "processing"

    # --- reload: the history comes back -----------------------------------------------------------
    page.reload()
    expect(log).to_contain_text("发货，承运商")  # the panel reopens by itself after a reload
    expect(log).to_contain_text("我的订单到哪了")
    assert customer_bubbles(page, "cminh730@email.com") == 1
    screenshot(page, "widget-3-after-reload")

    # --- the network drops while a reply is on its way; the widget resends, nothing doubles --------
    relay.swallow_replies = True
    say(page, "谢谢")
    wait_until(page, lambda: len(relay.swallowed) == 1)
    assert inbound_count(live, sender, "谢谢") == 1  # processed and answered; the page has not seen it
    relay.swallow_replies = False
    relay.drop()
    page.context.set_offline(True)
    expect(page.get_by_role("status").first).to_contain_text("网络已断开")
    say(page, "还有一个问题")  # written while offline: kept in the outbox, sent after reconnecting
    expect(page.locator(".m.in").last).to_contain_text("还有一个问题")
    page.context.set_offline(False)
    expect(page.get_by_role("status").first).not_to_contain_text("网络已断开")
    answered(page)  # the outbox is empty: everything written was answered
    assert customer_bubbles(page, "谢谢") == 1 and customer_bubbles(page, "还有一个问题") == 1
    assert inbound_count(live, sender, "谢谢") == 1 and inbound_count(live, sender, "还有一个问题") == 1
    replies = page.locator(".m.out").count()
    page.reload()
    expect(log).to_contain_text("谢谢")
    assert page.locator(".m.out").count() == replies  # nothing was shown twice before the reload
    screenshot(page, "widget-4-reconnected")

    # --- hostile text is shown, never run ----------------------------------------------------------
    say(page, XSS)
    answered(page)
    add_agent_message(live, sender, f"客服小王：{XSS}")
    page.reload()
    expect(log).to_contain_text(f"客服小王：{XSS}")
    assert customer_bubbles(page, XSS) == 1
    assert page.locator("img").count() == 0  # the demo page has none; the widget must not create one
    assert page.locator("[data-support-widget] .log script").count() == 0
    assert page.evaluate("window.__xss") is None
    expect(page.locator(".m.agent .who")).to_have_text("客服")
    screenshot(page, "widget-5-inert-html")


def wait_until(page: Page, condition: Callable[[], bool], timeout_s: float = 60.0) -> None:
    """Poll through Playwright: its sync API dispatches the relay's callbacks only inside its own calls."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        page.wait_for_timeout(100)

