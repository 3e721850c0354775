"""The REST channel's request validation (no server needed: the pydantic model is the contract)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from channels.rest import ChatRequest


@pytest.mark.parametrize("sender", ["web-user:cminh730", "web:abc", "telegram:42", "wechat:o6_bmjrPTlm6"])
def test_sender_ids_of_other_channels_are_refused(sender: str) -> None:
    with pytest.raises(ValidationError, match="belong to other channels"):
        ChatRequest(sender_id=sender, text="where is my order?")


def test_plain_sender_id_is_accepted() -> None:
    assert ChatRequest(sender_id="shop-42:alice", text="hi").sender_id == "shop-42:alice"
