"""The bodies of the widget's REST fallback (``/api/v1/widget/chat``, ``/api/v1/widget/history``).

They are the socket's frames (``routes.ready_frame``, ``reply_frame``, ``pending_frame``), so a page
reads the same JSON on either path; ``/docs`` shows them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from channels.rest import Button, Source


class FrameMessage(BaseModel):
    type: str
    text: str
    buttons: list[Button]
    sources: list[Source]


class HistoryItem(BaseModel):
    id: int
    direction: Literal["in", "out"]
    type: str
    text: str | None
    buttons: list[Button]
    sources: list[Source]
    agent: str | None
    client_id: str | None
    status: str | None
    at: str | None


class ReadyFrame(BaseModel):
    type: Literal["ready"]
    state: str
    language: str | None
    user: str | None  # the verified username, when the host site signed one
    history: list[HistoryItem]


class ReplyFrame(BaseModel):
    type: Literal["reply"]
    id: str  # the client's message id
    state: str
    language: str
    duplicate: bool
    messages: list[FrameMessage]


class PendingFrame(BaseModel):
    type: Literal["pending"]
    id: str
    retry_after: int
    detail: str


class ErrorFrame(BaseModel):
    type: Literal["error"]
    id: str | None
    rate_limited: bool
    detail: str
