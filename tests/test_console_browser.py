"""The agent console in a real browser: Playwright driving Debian's Chromium against the live system
(gateway + Rasa + the trained model; agents claim tickets, see tests/conftest.py).

An English customer asks for a person through ``POST /api/v1/chat``; Alice, signed in at
``/console`` at a laptop's size, sees the ticket arrive live, opens it (transcript and what the bot
understood beside it), claims it and replies; the customer gets the reply with their next REST call
and from ``GET .../messages``; the customer's next message appears in the console live, and again
after the console's websocket was cut and reconnected; a message carrying ``<script>`` and
``<img onerror>`` is shown as inert text; a note and a canned reply; resolve, and the customer is
asked for a rating. A Russian customer handed back by Olga gets the bot again, in Russian.
Screenshots go to tests/artifacts/ (not committed).
"""

from __future__ import annotations

import re
import secrets
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, Page, WebSocketRoute, expect

from handoff.console_routes import CONSOLE_DIR
from handoff.console_routes import router as console_router
from tests.conftest import AGENT_PASSWORD, LiveSystem, screenshot

XSS = '<img src=x onerror="alert(\'img\')"><script>alert("script")</script> & <b>bold?</b>'


class SocketCutter:
    """Sits between the console and the gateway's agent socket (Playwright's WebSocket routing) so the
    test can cut the connection as a network failure would."""

    def __init__(self) -> None:
        self.routes: list[WebSocketRoute] = []

    def __call__(self, ws: WebSocketRoute) -> None:
        ws.connect_to_server()  # frames pass through unchanged both ways
        self.routes.append(ws)

    def cut(self) -> None:
        for ws in self.routes:
            ws.close(code=1001, reason="network cut by the test")
        self.routes.clear()


def sign_in(page: Page, live: LiveSystem, username: str) -> None:
    response = page.goto(f"{live.url}/console")
    assert response is not None and response.ok
    csp = response.headers.get("content-security-policy", "")
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp, csp
    page.get_by_label("Username", exact=True).fill(username)
    page.get_by_label("Password", exact=True).fill(AGENT_PASSWORD)
    page.get_by_label("Password", exact=True).press("Enter")  # the keyboard is enough
    expect(page.locator("#whoami")).to_contain_text("(agent)")
    expect(page.locator("#connection")).to_have_text("Live")


def customer_messages(live: LiveSystem, sender: str, token: str, after: int = 0) -> dict[str, Any]:
    resp = httpx.get(f"{live.url}/api/v1/conversations/{sender}/messages", params={"after": after},
                     headers={"X-Conversation-Token": token}, timeout=30)
    assert resp.status_code == 200, resp.text
    return resp.json()


def ticket_status(live: LiveSystem, sender: str) -> str:
    rows = live.query("SELECT status FROM handoff_tickets WHERE sender_id = :s ORDER BY id DESC LIMIT 1", s=sender)
    assert rows, f"no ticket for {sender}"
    return str(rows[0][0])


def test_console_sign_in_claim_reply_live_messages_resolve(live: LiveSystem, browser: Browser) -> None:
    context = browser.new_context(viewport={"width": 1366, "height": 768})
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    cutter = SocketCutter()
    page.route_web_socket(re.compile(r"/api/v1/agent/ws$"), cutter)

    # A wrong password is refused with a plain message; then Alice signs in.
    page.goto(f"{live.url}/console")
    page.get_by_label("Username", exact=True).fill("alice")
    page.get_by_label("Password", exact=True).fill("not-her-password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert").first).to_have_text("Wrong username or password.")
    sign_in(page, live, "alice")
    connection = page.locator("#connection")

    # The customer asks for a person; the ticket appears in the open console without a reload.
    sender = f"console-{secrets.token_hex(4)}"
    first = live.say(sender, "I want to talk to a human")
    assert first["state"] == "queued", first
    token = first["conversation_token"]
    assert token
    row = page.locator(".ticket").filter(has_text=sender)
    expect(row).to_be_visible()
    expect(row).to_contain_text("Asked for a person")
    expect(row).to_contain_text("waiting")
    expect(row).to_contain_text("general-en")

    # Open it: transcript, and beside it what the bot understood and why it escalated.
    row.click()
    expect(page.locator("#chat-title")).to_contain_text(sender)
    transcript = page.get_by_role("log", name="Conversation")
    expect(transcript.locator(".msg.from-customer .text").first).to_have_text("I want to talk to a human")
    expect(transcript.locator(".msg.from-bot").first).to_be_visible()
    turns = page.locator("#ctx-turns")
    expect(turns).to_contain_text("human_handoff")
    expect(turns.locator(".conf").first).to_have_text(re.compile(r"^\d+%$"))
    expect(page.locator("#ctx-reason")).to_contain_text("Asked for a person")
    expect(page.locator("#ctx-summary")).to_contain_text("I want to talk to a human")
    expect(page.locator("#ctx-customer")).to_contain_text("not verified")
    expect(page.get_by_label("Reply to the customer")).to_be_disabled()  # not hers until she claims it

    page.get_by_role("button", name="Claim").click()
    expect(page.locator("#chat-meta")).to_contain_text("with you")
    assert ticket_status(live, sender) == "assigned"

    reply = "Hi, I'm Alice. I've read your conversation - how can I help?"
    box = page.get_by_label("Reply to the customer")
    expect(box).to_be_enabled()
    box.fill(reply)
    box.press("Enter")
    expect(transcript.locator(".msg.from-agent .text").last).to_have_text(reply)
    expect(box).to_have_value("")

    # The customer's next REST call brings the agent's reply (a REST customer cannot be pushed to) ...
    second = live.say(sender, "Thanks! My order is 3348917502 and it is late")
    assert second["state"] == "human", second
    agent_texts = [m["text"] for m in second["messages"] if m["type"] == "agent"]
    assert agent_texts == [reply], second
    # ... and so does reading their conversation with the token from the first answer.
    read = customer_messages(live, sender, token)
    assert read["state"] == "human"
    assert [m["text"] for m in read["messages"] if m["from"] == "agent"] == [reply]
    # The customer's message appears in the console live.
    expect(transcript.locator(".msg.from-customer .text").last).to_have_text(
        "Thanks! My order is 3348917502 and it is late")

    # The console's socket is cut: it says so, reconnects, and what was said meanwhile shows up.
    cutter.cut()
    expect(connection).to_contain_text("reconnecting", ignore_case=True)
    live.say(sender, "Are you still there?")
    expect(connection).to_have_text("Live", timeout=30_000)
    expect(transcript.locator(".msg.from-customer .text").last).to_have_text("Are you still there?")

    # Markup from a customer is text: shown literally, nothing executed, no element created.
    assert live.say(sender, XSS)["state"] == "human"
    expect(transcript.locator(".msg.from-customer .text").last).to_have_text(XSS)
    assert transcript.locator("img, script, b").count() == 0
    assert page.evaluate("document.querySelectorAll('#app img, #app b').length") == 0
    assert dialogs == []
    # The ticket list's unread badge is not involved (this ticket is open), and the row stays one row.
    expect(page.locator(".ticket").filter(has_text=sender)).to_have_count(1)

    # An internal note (agents only) and a canned reply in the customer's language.
    page.get_by_label("Add a note (only agents see it)").fill("Customer says order 3348917502 is late.")
    page.get_by_role("button", name="Add note").click()
    expect(page.locator("#notes")).to_contain_text("Customer says order 3348917502 is late.")
    page.get_by_label("Canned reply").select_option(label="Checking")
    page.get_by_role("button", name="Insert").click()
    expect(box).to_have_value(re.compile("checking this for you"))
    page.get_by_role("button", name="Send").click()
    expect(transcript.locator(".msg.from-agent .text").last).to_contain_text("checking this for you")
    screenshot(page, "console-chat", full_page=True)
    notes_seen_by_customer = [m for m in customer_messages(live, sender, token)["messages"]
                              if "is late." in (m["text"] or "") and m["from"] != "customer"]
    assert notes_seen_by_customer == []  # a note never reaches the customer

    # Resolve: the ticket is closed and the customer is asked for a rating.
    page.get_by_role("button", name="Resolve").click()
    expect(page.locator("#chat-meta")).to_contain_text("resolved")
    expect(page.get_by_label("Reply to the customer")).to_be_disabled()
    assert ticket_status(live, sender) == "resolved"
    after = customer_messages(live, sender, token)
    assert after["state"] == "closed"
    assert "rate" in after["messages"][-1]["text"]
    assert [b["payload"] for b in after["messages"][-1]["buttons"]] == [f"/csat_{n}" for n in range(1, 6)]
    expect(page.locator(".ticket").filter(has_text=sender)).to_have_count(0)  # gone from "Open"
    assert dialogs == []
    screenshot(page, "console-resolved", full_page=True)
    context.close()


def test_console_hand_back_to_the_bot(live: LiveSystem, browser: Browser) -> None:
    """Olga (Russian queues) takes a Russian chat and hands it back; the bot answers again, in Russian."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    sender = f"console-ru-{secrets.token_hex(4)}"
    first = live.say(sender, "Я хочу поговорить с оператором")
    assert first["state"] == "queued", first
    sign_in(page, live, "olga")  # the ticket is already waiting: it is in the list that loads
    row = page.locator(".ticket").filter(has_text=sender)
    expect(row).to_contain_text("general-ru")
    row.focus()
    row.press("Enter")  # open it with the keyboard
    expect(page.locator("#chat-title")).to_contain_text(sender)
    page.get_by_role("button", name="Claim").click()
    expect(page.locator("#chat-meta")).to_contain_text("with you")
    page.get_by_label("Canned reply").select_option(label="Приветствие")
    page.get_by_role("button", name="Insert").click()
    page.get_by_role("button", name="Send").click()
    transcript = page.get_by_role("log", name="Conversation")
    expect(transcript.locator(".msg.from-agent .text").last).to_contain_text("Здравствуйте")
    page.get_by_role("button", name="Hand back to the bot").click()
    expect(page.locator("#chat-meta")).to_contain_text("handed back")
    assert ticket_status(live, sender) == "handed_back"
    answer = live.say(sender, "Где мой заказ?")
    assert answer["state"] == "bot", answer
    bot_texts = [m["text"] for m in answer["messages"] if m["type"] == "text"]
    assert bot_texts and all(re.search("[а-яА-Я]", t) for t in bot_texts), answer  # the bot is back, in Russian
    screenshot(page, "console-handed-back", full_page=True)
    context.close()


def test_console_files_are_served_with_a_strict_policy() -> None:
    """No browser needed: the page, its scripts and style, caching, and the rules the page relies on."""
    app = FastAPI()
    app.include_router(console_router)
    with TestClient(app) as client:
        page = client.get("/console")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe" not in csp
        assert page.headers["x-content-type-options"] == "nosniff"
        # Every script is a file (the policy forbids inline ones) and the page links its own assets.
        # In dependency order (defer keeps it): the shared helpers, the ticket views, then the rest.
        script_names = ["console_base.js", "console_ticket.js", "console.js"]
        scripts = re.findall(r"<script\b[^>]*>", page.text)
        assert scripts == [f'<script src="/console/{name}" defer>' for name in script_names]
        assert "/console/console.css" in page.text
        for name in script_names:
            js = client.get(f"/console/{name}")
            assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript"), name
            again = client.get(f"/console/{name}", headers={"If-None-Match": js.headers["etag"]})
            assert again.status_code == 304 and again.content == b"", name
        assert client.get("/console/console.css").headers["content-type"].startswith("text/css")
        assert client.get("/console/secrets.txt").status_code == 404
        assert client.get("/console/..%2fapi.py").status_code == 404
        assert client.get("/console/", follow_redirects=False).headers["location"] == "/console"
    # Text from customers reaches the page only as text: no HTML-parsing sinks in the console's code.
    scripts_on_disk = sorted(CONSOLE_DIR.glob("*.js"))
    assert {path.name for path in scripts_on_disk} == set(script_names)
    for path in scripts_on_disk:
        code = path.read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
            assert sink not in code, f"{path.name} uses {sink}"
