"""The customer REST channel: the stable contract other channels and tests rely on.

POST /api/v1/chat  {"sender_id", "text" | "payload", "language"?, "message_id"?}
→ {"sender_id", "language", "state", "messages": [{"type", "text", "buttons", "sources"}]}
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from conversations.service import ConversationService, InboundMessage, MessagePending

router = APIRouter(prefix="/api/v1", tags=["chat"])

SenderId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")]
# Sender ids other channels vouch for (a verified widget user, a Telegram chat…): a REST caller must
# not be able to speak, or read, as one of them.
RESERVED_SENDER_PREFIXES = ("web:", "web-user:", "telegram:", "wechat:")
MAX_TEXT_CHARS = 4000


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sender_id: SenderId
    text: str | None = Field(default=None, max_length=MAX_TEXT_CHARS)
    payload: str | None = Field(default=None, max_length=MAX_TEXT_CHARS)
    language: Literal["en", "zh", "ru"] | None = None
    message_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")] | None = None

    @model_validator(mode="after")
    def _needs_text_or_payload(self) -> ChatRequest:
        if self.sender_id.startswith(RESERVED_SENDER_PREFIXES):
            raise ValueError(
                f"sender_id must not start with {', '.join(RESERVED_SENDER_PREFIXES)}: those belong to other channels"
            )
        if self.payload is None and (self.text is None or not self.text.strip()):
            raise ValueError("text must be a non-empty string (or send a button's payload)")
        if self.payload is not None and not self.payload.strip():
            raise ValueError("payload must not be empty")
        return self


class Button(BaseModel):
    title: str
    payload: str


class Source(BaseModel):
    title: str
    url: str


class OutMessage(BaseModel):
    type: Literal["text", "kb_answer", "handoff", "agent"]
    text: str
    buttons: list[Button] = []
    sources: list[Source] = []


class ChatResponse(BaseModel):
    sender_id: str
    language: Literal["en", "zh", "ru"]
    state: Literal["bot", "queued", "human", "closed"]
    messages: list[OutMessage]
    # First answer of a conversation only: read access to it (GET /api/v1/conversations/{sender_id}/messages).
    conversation_token: str | None = None


@router.post("/chat", response_model=ChatResponse, responses={503: {"description": "Rasa is not available"}})
async def chat(body: ChatRequest, request: Request) -> ChatResponse | JSONResponse:
    service: ConversationService = request.app.state.conversations
    inbound = InboundMessage(
        sender_id=body.sender_id, channel="rest", text=body.text, payload=body.payload,
        language=body.language, message_id=body.message_id,
    )
    try:
        result = await service.handle(inbound)
    except MessagePending as pending:
        retry_after = request.app.state.settings.retry_after_s
        detail = (
            f"The assistant is restarting and your message is saved. Retry in {retry_after} s with the same "
            f"message_id; it will be answered once. ({pending})"
        )
        return JSONResponse(
            {"detail": detail, "message_id": pending.message_id},
            status_code=503, headers={"Retry-After": str(retry_after)},
        )
    return ChatResponse(
        sender_id=result.sender_id, language=result.language, state=result.state,  # type: ignore[arg-type]
        messages=[OutMessage(**m.as_dict()) for m in result.messages],
        conversation_token=result.conversation_token,
    )
