"""A local Telegram Bot API: the methods the gateway uses, with Telegram's request and response format.

Responses are ``{"ok": true, "result": ...}`` with results built from python-telegram-bot's types,
errors are ``{"ok": false, "error_code": N, "description": "..."}`` (429 adds
``"parameters": {"retry_after": N}``), as documented at core.telegram.org/bots/api. Like Telegram it
checks what we send: the token in the path, HTML parse mode (allowed tags, balanced, only the
entities Telegram knows), the 4,096-character text limit after entity parsing, 64-byte
callback_data, and refuses ``getUpdates`` while a webhook is set (409).

Also builds real-format ``Update`` JSON for driving the webhook.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs

from telegram import (
    CallbackQuery,
    Chat,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Message,
    MessageEntity,
    Update,
    User,
)

from tests.fakes.http import FakeService

BOT = User(id=7000001, first_name="Support", is_bot=True, username="support_test_bot")
ALLOWED_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a", "code", "pre", "tg-spoiler",
                "span", "blockquote", "tg-emoji"}
ENTITY = re.compile(r"&(?:lt|gt|amp|quot|#\d+|#x[0-9a-fA-F]+);")


class EntityParseError(ValueError):
    pass


class _TelegramHtml(HTMLParser):
    """Telegram's HTML mode: known tags only, properly nested; returns the visible text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.stack: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ALLOWED_TAGS:
            raise EntityParseError(f"Unsupported start tag \"{tag}\"")
        if tag == "a" and not any(k == "href" for k, _ in attrs):
            raise EntityParseError("a tag without href")
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack.pop() != tag:
            raise EntityParseError(f"Unmatched end tag \"{tag}\"")

    def handle_data(self, data: str) -> None:
        if "<" in data or ">" in data:
            raise EntityParseError("unescaped < or >")
        self.text.append(data)

    def handle_entityref(self, name: str) -> None:
        mapping = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
        if name not in mapping:
            raise EntityParseError(f"Unsupported HTML entity \"&{name};\"")
        self.text.append(mapping[name])

    def handle_charref(self, name: str) -> None:
        self.text.append(chr(int(name[1:], 16) if name.lower().startswith("x") else int(name)))


def visible_text(html_text: str) -> str:
    """What the user sees for an HTML-mode text; raises EntityParseError like Telegram's 400."""
    if "&" in ENTITY.sub("", html_text):
        raise EntityParseError("bare & (must be &amp;)")
    parser = _TelegramHtml()
    parser.feed(html_text)
    parser.close()
    if parser.stack:
        raise EntityParseError(f"Can't find end tag corresponding to start tag \"{parser.stack[-1]}\"")
    return "".join(parser.text)


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    at: float  # time.monotonic() when it arrived
    status: int = 200


@dataclass
class FakeBotApi(FakeService):
    token: str = "123456:TEST-token"
    calls: list[Call] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)  # accepted sendMessage results (Message JSON)
    webhook: dict[str, Any] = field(default_factory=dict)
    blocked_chats: set[int] = field(default_factory=set)
    _throttle: list[int] = field(default_factory=list)  # retry_after for the next sendMessage calls
    _updates: list[dict[str, Any]] = field(default_factory=list)
    _next_message_id: int = 1

    def __post_init__(self) -> None:
        super().__init__()
        self.new_updates = threading.Condition(self.lock)

    # --- test controls ----------------------------------------------------------------------------
    def throttle_next(self, retry_after: int, times: int = 1) -> None:
        """The next ``times`` sendMessage calls get 429 Too Many Requests with this retry_after."""
        with self.lock:
            self._throttle.extend([retry_after] * times)

    def queue_update(self, update: dict[str, Any]) -> None:
        """An update that getUpdates will return (what a user did in the Telegram app)."""
        with self.new_updates:
            self._updates.append(update)
            self.new_updates.notify_all()

    def texts(self, chat_id: int | None = None) -> list[str]:
        with self.lock:
            return [m["text"] for m in self.sent if chat_id is None or m["chat"]["id"] == chat_id]

    def calls_to(self, method: str) -> list[Call]:
        with self.lock:
            return [c for c in self.calls if c.method == method]

    # --- the API ---------------------------------------------------------------------------------
    def handle(self, method: str, path: str, query: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        match = re.fullmatch(r"/bot([^/]+)/(\w+)", path)
        if match is None:
            return self.json_response(404, {"ok": False, "error_code": 404, "description": "Not Found"})
        token, api_method = match.groups()
        params = self._params(body, query)
        call = Call(api_method, params, time.monotonic())
        with self.lock:
            self.calls.append(call)
        if token != self.token:
            call.status = 401
            return self.json_response(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
        handler = getattr(self, f"_m_{api_method}", None)
        if handler is None:
            call.status = 404
            return self.json_response(404, {"ok": False, "error_code": 404, "description": "Not Found"})
        status, data = handler(params)
        call.status = status
        return self.json_response(status, data)

    @staticmethod
    def _params(body: bytes, query: dict[str, str]) -> dict[str, Any]:
        params: dict[str, Any] = dict(query)
        if body:
            try:
                params.update(json.loads(body))
            except ValueError:
                params.update({k: v[-1] for k, v in parse_qs(body.decode()).items()})
        return params

    @staticmethod
    def _error(code: int, description: str, **parameters: Any) -> tuple[int, dict[str, Any]]:
        data: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
        if parameters:
            data["parameters"] = parameters
        return code, data

    def _m_getMe(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:  # noqa: N802 - Bot API names
        return 200, {"ok": True, "result": BOT.to_dict()}

    def _m_sendMessage(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:  # noqa: N802
        with self.lock:
            if self._throttle:
                retry_after = self._throttle.pop(0)
                return self._error(429, f"Too Many Requests: retry after {retry_after}", retry_after=retry_after)
        chat_id, text = params.get("chat_id"), params.get("text")
        if not isinstance(chat_id, int) or not isinstance(text, str):
            return self._error(400, "Bad Request: chat_id and text are required")
        if chat_id in self.blocked_chats:
            return self._error(403, "Forbidden: bot was blocked by the user")
        if params.get("parse_mode") == "HTML":
            try:
                shown = visible_text(text)
            except EntityParseError as err:
                return self._error(400, f"Bad Request: can't parse entities: {err}")
        else:
            shown = text
        if not shown.strip():
            return self._error(400, "Bad Request: message text is empty")
        if utf16_len(shown) > 4096:
            return self._error(400, "Bad Request: message is too long")
        markup = None
        if "reply_markup" in params:
            raw = params["reply_markup"]
            raw = json.loads(raw) if isinstance(raw, str) else raw
            for row in raw.get("inline_keyboard", []):
                for button in row:
                    if len(str(button.get("callback_data", "")).encode()) > 64:
                        return self._error(400, "Bad Request: BUTTON_DATA_INVALID")
            markup = InlineKeyboardMarkup.de_json(raw, None)
        with self.lock:
            message_id = self._next_message_id
            self._next_message_id += 1
            message = Message(
                message_id=message_id, date=datetime.now(UTC), chat=Chat(id=chat_id, type="private"),
                from_user=BOT, text=shown, reply_markup=markup,
            ).to_dict()
            self.sent.append(message)
        return 200, {"ok": True, "result": message}

    def _m_answerCallbackQuery(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:  # noqa: N802
        if not params.get("callback_query_id"):
            return self._error(400, "Bad Request: query is too old and response timeout expired or query ID is invalid")
        return 200, {"ok": True, "result": True}

    def _m_setWebhook(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:  # noqa: N802
        url = str(params.get("url", ""))
        if url and not url.startswith("https://"):
            return self._error(400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook")
        secret = params.get("secret_token")
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", str(secret)):
            return self._error(400, "Bad Request: secret token contains unallowed characters")
        with self.lock:
            self.webhook = dict(params) if url else {}
        return 200, {"ok": True, "result": True, "description": "Webhook was set" if url else "Webhook was deleted"}

    def _m_deleteWebhook(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:  # noqa: N802
        with self.lock:
            self.webhook = {}
            if params.get("drop_pending_updates"):
                self._updates.clear()
        return 200, {"ok": True, "result": True, "description": "Webhook was deleted"}

    def _m_getWebhookInfo(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:  # noqa: N802
        with self.lock:
            info = {"url": self.webhook.get("url", ""), "has_custom_certificate": False,
                    "pending_update_count": len(self._updates)}
            if self.webhook.get("allowed_updates"):
                info["allowed_updates"] = self.webhook["allowed_updates"]
        return 200, {"ok": True, "result": info}

    def _m_getUpdates(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:  # noqa: N802
        offset = int(params.get("offset") or 0)
        timeout = min(float(params.get("timeout") or 0), 5.0)
        deadline = time.monotonic() + timeout
        with self.new_updates:
            if self.webhook:
                return self._error(409, "Conflict: can't use getUpdates method while webhook is active; "
                                        "use deleteWebhook to delete the webhook first")
            if offset:  # confirms every update below offset: Telegram forgets them
                self._updates = [u for u in self._updates if u["update_id"] >= offset]
            while not self._updates and time.monotonic() < deadline:
                self.new_updates.wait(deadline - time.monotonic())
            return 200, {"ok": True, "result": list(self._updates[: int(params.get("limit") or 100)])}


# --- updates as Telegram sends them ------------------------------------------------------------------
def _user(chat_id: int, language_code: str | None) -> User:
    return User(id=chat_id, first_name="Test", is_bot=False, language_code=language_code)


def _message(chat_id: int, text: str | None, language_code: str | None, message_id: int = 1,
             chat_type: str = "private", **extra: Any) -> Message:
    entities = None
    if text and text.startswith("/"):
        entities = [MessageEntity(type=MessageEntity.BOT_COMMAND, offset=0, length=len(text.split()[0]))]
    return Message(
        message_id=message_id, date=datetime.now(UTC), chat=Chat(id=chat_id, type=chat_type),
        from_user=_user(chat_id, language_code), text=text, entities=entities, **extra,
    )


def text_update(update_id: int, chat_id: int, text: str, language_code: str | None = "en",
                chat_type: str = "private") -> dict[str, Any]:
    return Update(update_id=update_id, message=_message(chat_id, text, language_code, chat_type=chat_type)).to_dict()


def photo_update(update_id: int, chat_id: int, language_code: str | None = "en") -> dict[str, Any]:
    from telegram import PhotoSize

    photo = (PhotoSize(file_id="AgAD", file_unique_id="AQAD", width=90, height=90),)
    return Update(update_id=update_id, message=_message(chat_id, None, language_code, photo=photo)).to_dict()


def callback_update(update_id: int, chat_id: int, data: str, language_code: str | None = "en") -> dict[str, Any]:
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("x", callback_data=data)]])
    shown = _message(chat_id, "pick one", None, message_id=99, reply_markup=keyboard)
    query = CallbackQuery(id=f"cq{update_id}", from_user=_user(chat_id, language_code), chat_instance="42",
                          data=data, message=shown)
    return Update(update_id=update_id, callback_query=query).to_dict()
