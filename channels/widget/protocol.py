"""The widget's wire format (JSON text frames on ``/api/v1/ws``; the REST fallback uses the same shapes).

Identities and tokens travel only inside frames and bodies, never in a URL (no ``?token=``).

Browser → gateway
  {"type": "hello", "token"?: str, "user_id"?: str, "user_sig"?: str, "locale"?: str}   first frame, within 10 s
      ``locale``: the widget's interface language (en, zh-Hans, zh-Hant, ru), for the gateway's notices.
  {"type": "message", "id": str, "text"?: str, "payload"?: str, "language"?: "en"|"zh"|"ru"}
      ``id`` is the client message id: a resend after a reconnect is answered from the stored reply,
      never processed twice. ``payload`` is a clicked button's payload (``text`` = its title, shown
      in the transcript); ``/human_handoff`` asks for a person.
  {"type": "ping"}                                                       keep-alive, answered by pong
  {"type": "history"}                                                    ask for the ready frame again

Gateway → browser
  {"type": "ready", "state", "language", "user": str|null, "history": [HistoryItem]}
  {"type": "ack", "id"}                                   the message is received and being answered
  {"type": "reply", "id", "state", "language", "duplicate": bool, "messages": [Message]}
  {"type": "pending", "id", "retry_after": s, "detail"}   stored; the bot is restarting, resend later
  {"type": "push", "state", "messages": [Message]}        outside a turn: agent replies, queue updates
  {"type": "error", "id"?: str, "detail", "retry"?: true, "rate_limited"?: true, "retry_after"?: s}
      a frame was refused; the socket stays open. ``retry``: resend the same id later; otherwise the
      message is dropped (invalid, or over a rate limit — per sender, per address or global:
      ``detail`` is a polite notice in the customer's language to show as is).
  {"type": "pong"}

  Message = {"type": "text"|"kb_answer"|"handoff"|"agent", "text", "buttons": [{"title", "payload"}],
             "sources": [{"title", "url"}], "agent"?: the agent's display name (type agent)}
  HistoryItem = Message + {"id": int, "direction": "in"|"out", "client_id": str|null,
                           "status": "pending"|"answered"|null, "at": ISO time}

Close codes: 4400 bad or missing hello, 4401 identity refused (unsigned or badly signed user id),
4403 origin not allowed, 4408 no hello in time. More than 8 unanswered messages on one socket get
an ``error`` with ``retry`` (the widget resends them later).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from channels.rest import MAX_TEXT_CHARS, require_text_or_payload

MAX_FRAME_BYTES = 16 * 1024
HISTORY_LIMIT = 200  # newest messages sent on (re)connect

ClientId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")]


class Hello(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["hello"]
    token: str | None = Field(default=None, max_length=128)
    user_id: str | None = Field(default=None, max_length=64)
    user_sig: str | None = Field(default=None, max_length=128)
    locale: str | None = Field(default=None, max_length=35)


class ChatFrame(BaseModel):
    """One customer message; also the REST fallback's body (with the hello's identity fields)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["message"] = "message"
    id: ClientId
    text: str | None = Field(default=None, max_length=MAX_TEXT_CHARS)
    payload: str | None = Field(default=None, max_length=MAX_TEXT_CHARS)
    language: Literal["en", "zh", "ru"] | None = None

    @model_validator(mode="after")
    def _needs_text_or_payload(self) -> ChatFrame:
        require_text_or_payload(self.text, self.payload)
        return self


class RestIdentity(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str | None = Field(default=None, max_length=128)
    user_id: str | None = Field(default=None, max_length=64)
    user_sig: str | None = Field(default=None, max_length=128)
    locale: str | None = Field(default=None, max_length=35)


class RestChat(ChatFrame):
    token: str | None = Field(default=None, max_length=128)
    user_id: str | None = Field(default=None, max_length=64)
    user_sig: str | None = Field(default=None, max_length=128)
    locale: str | None = Field(default=None, max_length=35)


def history_item(entry: dict[str, Any]) -> dict[str, Any]:
    """A transcript row (ConversationService.transcript) as the browser sees it: no channel internals."""
    return {
        "id": entry["id"], "direction": entry["direction"], "type": entry["type"], "text": entry["text"],
        "buttons": entry.get("buttons") or [], "sources": entry.get("sources") or [], "agent": entry.get("agent"),
        "client_id": entry.get("client_message_id") if entry["direction"] == "in" else None,
        "status": entry.get("status"), "at": entry.get("created_at"),
    }


def error_detail(err: Exception) -> str:
    """A pydantic ValidationError (or any error) as one readable line."""
    errors = getattr(err, "errors", None)
    if callable(errors):
        parts = []
        for e in errors():
            where = ".".join(str(p) for p in e.get("loc", ()) if p != "__root__")
            parts.append(f"{where}: {e.get('msg')}" if where else str(e.get("msg")))
        return "; ".join(parts)
    return str(err)
