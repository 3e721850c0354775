"""The conversation service storing turns in PostgreSQL (the multi-replica set-up), against the
live Rasa: migrations, the transcript, the turn record and idempotency all work there too."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from conversations.models import Message, Turn
from conversations.rasa_client import RasaClient
from conversations.service import ConversationService, InboundMessage
from storage.db import make_engine, make_session_factory, upgrade
from tests.conftest import LiveSystem
from tests.store_fixtures import fixture_postgres_schema_url  # noqa: F401

pytestmark = pytest.mark.rasa


async def test_conversation_stored_in_postgres(live: LiveSystem, postgres_schema_url: str) -> None:
    upgrade(postgres_schema_url)
    engine = make_engine(postgres_schema_url)
    sessions = make_session_factory(engine)
    rasa = RasaClient(f"http://127.0.0.1:{live.rasa_port}", "test-token", channel_token=live.channel_token)
    service = ConversationService(sessions, rasa)
    sender = f"pg-{uuid.uuid4().hex[:8]}"
    try:
        first = await service.handle(InboundMessage(sender, "rest", "где мой заказ?", message_id="a"))
        assert first.language == "ru" and first.messages
        again = await service.handle(InboundMessage(sender, "rest", "где мой заказ?", message_id="a"))
        assert again.duplicate and again.messages == first.messages
        with sessions() as db:
            directions = [m.direction for m in db.scalars(select(Message).order_by(Message.id))]
            turn = db.scalars(select(Turn)).one()
        assert directions[0] == "in" and directions.count("in") == 1 and "out" in directions
        assert turn.language == "ru" and turn.intent and turn.actions
    finally:
        await rasa.close()
        engine.dispose()
