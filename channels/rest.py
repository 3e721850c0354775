"""The customer REST channel: the stable contract other channels and tests rely on.

POST /api/v1/chat  {"sender_id", "text" | "payload", "language"?, "message_id"?}
→ {"sender_id", "language", "state", "messages": [{"type", "text", "buttons", "sources"}],
   "conversation_token"?: first answer only}

Who may speak in a conversation: the sender id names it, it does not prove anything. The first
message creates the conversation and its answer (or its 503) carries the ``conversation_token``;
every later turn must send it as ``X-Conversation-Token``, or come from a server-to-server
integration with an ``X-Api-Key`` from ``REST_API_KEYS``. Otherwise 401, and nothing is stored or
sent to the bot. The check is made before the message is stored; two first messages for the same
new sender id are taken one after the other, so the second needs the token like any later turn.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Literal

from anyio import to_thread
from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from api_errors import ApiError, ErrorBody
from channels.registry import PUSH_CHANNELS
from conversations.service import ConversationService, InboundMessage, MessagePending
from settings import Settings

router = APIRouter(prefix="/api/v1", tags=["chat"])

SenderId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")]
# Sender ids other channels vouch for (a verified widget user, a Telegram chat…): a REST caller must
# not be able to speak, or read, as one of them.
RESERVED_SENDER_PREFIXES = ("web:", "web-user:", *(f"{channel.name}:" for channel in PUSH_CHANNELS))
MAX_TEXT_CHARS = 4000


def require_text_or_payload(text: str | None, payload: str | None) -> None:
    """What every customer message carries (here and on the widget's socket): some text, or the payload
    of a button they clicked; ValueError (a validation error of the model calling it) otherwise."""
    if payload is None and (text is None or not text.strip()):
        raise ValueError("text must be a non-empty string (or send a button's payload)")
    if payload is not None and not payload.strip():
        raise ValueError("payload must not be empty")


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
        require_text_or_payload(self.text, self.payload)
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


# Held per new sender id while its first message is being answered (see the module docstring), with the
# conversation service's turn locks: across gateway replicas too when they share PostgreSQL, so a second
# "first" message arriving at another replica cannot skip the token check either.
FIRST_MESSAGE = "first:"

TOKEN_MISSING = (
    "This conversation already exists: send its X-Conversation-Token header (the conversation_token of its "
    "first answer), or an X-Api-Key for server-to-server use. Nothing was stored."
)
TOKEN_WRONG = "X-Conversation-Token is not the token of this conversation. Nothing was stored."
API_KEY_WRONG = "X-Api-Key is not a valid API key. Nothing was stored."


def api_key_valid(given: str, settings: Settings) -> bool:
    """Constant-time comparison with every configured key (no early exit that times which one)."""
    ok = False
    for key in settings.rest_api_keys:
        expected = key.get_secret_value()
        ok |= bool(expected) and hmac.compare_digest(given.encode(), expected.encode())
    return ok


def token_valid(service: ConversationService, sender_id: str, token: str | None) -> bool:
    if not token or service.hooks is None:  # no handoff wired: no tokens are issued either
        return False
    return hmac.compare_digest(service.hooks.conversation_token(sender_id).encode(), token.encode())


class ChatPending(BaseModel):
    """The 503 while Rasa restarts: the message is stored; resend it with the same ``message_id``."""

    detail: str
    message_id: str
    conversation_token: str | None = None  # when this message started the conversation


def _refuse(detail: str) -> ApiError:
    return ApiError(401, detail, headers={"WWW-Authenticate": "X-Conversation-Token"})


@router.post(
    "/chat", response_model=ChatResponse,
    responses={401: {"model": ErrorBody, "description": "an existing conversation without its X-Conversation-Token "
                                                         "(or a wrong X-Api-Key)"},
               413: {"model": ErrorBody, "description": "body over MAX_BODY_BYTES"},
               429: {"model": ErrorBody, "description": "too many messages from this address"},
               503: {"model": ChatPending, "description": "Rasa is not available; the message is stored"}},
)
async def chat(
    body: ChatRequest, request: Request,
    x_conversation_token: Annotated[str | None, Header(max_length=256, description=(
        "the conversation_token of the conversation's first answer; required on every later turn"))] = None,
    x_api_key: Annotated[str | None, Header(max_length=256, description=(
        "server-to-server integrations: one of REST_API_KEYS, instead of the conversation token"))] = None,
) -> ChatResponse | JSONResponse:
    service: ConversationService = request.app.state.conversations
    settings: Settings = request.app.state.settings
    trusted = False
    if x_api_key is not None:
        if not api_key_valid(x_api_key, settings):
            raise _refuse(API_KEY_WRONG)
        trusted = True
    sender = body.sender_id
    if await to_thread.run_sync(service.conversation_state, sender) is not None:
        return await _turn(request, service, body, x_conversation_token, trusted, created=False)
    # A second "first" message waits, then needs the token. Its own locks (not the turn locks: the turn
    # inside takes one of those, and a shared pool ran dry with 20 new conversations at once).
    first_locks = getattr(request.app.state, "first_message_locks", None) or service.turn_locks
    async with first_locks.hold(FIRST_MESSAGE + sender):
        exists = await to_thread.run_sync(service.conversation_state, sender) is not None
        return await _turn(request, service, body, x_conversation_token, trusted, created=not exists)


async def _turn(
    request: Request, service: ConversationService, body: ChatRequest, token: str | None, trusted: bool, created: bool
) -> ChatResponse | JSONResponse:
    if not created and not trusted and not token_valid(service, body.sender_id, token):
        raise _refuse(TOKEN_WRONG if token else TOKEN_MISSING)
    metadata = {"client_address": request.client.host} if request.client else {}
    inbound = InboundMessage(
        sender_id=body.sender_id, channel="rest", text=body.text, payload=body.payload,
        language=body.language, message_id=body.message_id, metadata=metadata,
    )
    try:
        result = await service.handle(inbound)
    except MessagePending as pending:
        retry_after = request.app.state.settings.retry_after_s
        detail = (
            f"The assistant is restarting and your message is saved. Retry in {retry_after} s with the same "
            f"message_id (and the conversation_token as X-Conversation-Token); it will be answered once. ({pending})"
        )
        content: dict[str, str] = {"detail": detail, "message_id": pending.message_id}
        if created and service.hooks is not None:  # this message started the conversation: its token
            content["conversation_token"] = service.hooks.conversation_token(body.sender_id)
        return JSONResponse(content, status_code=503, headers={"Retry-After": str(retry_after)})
    return ChatResponse(
        sender_id=result.sender_id, language=result.language, state=result.state,  # type: ignore[arg-type]
        messages=[OutMessage(**m.as_dict()) for m in result.messages],
        conversation_token=result.conversation_token,
    )
