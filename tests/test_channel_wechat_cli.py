"""`python -m channels wechat check` and `outbox status`, run as a deployer runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from channels.outbox import Delivery, Outbox
from storage.db import make_engine, make_session_factory, upgrade
from tests.fakes.wechat_api import APP_ID, APP_SECRET, FakeWeChatApi
from tests.test_channel_telegram_cli import cli


def test_check_fetches_a_token_without_printing_it(wx_api: FakeWeChatApi) -> None:
    result = cli("wechat", "check", WECHAT_APP_ID=APP_ID, WECHAT_APP_SECRET=APP_SECRET, WECHAT_API_BASE=wx_api.url)
    assert result.returncode == 0, result.stderr
    assert len(wx_api.tokens_issued) == 1
    assert wx_api.tokens_issued[0] not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("env", "code", "message"),
    [({"WECHAT_APP_ID": APP_ID, "WECHAT_APP_SECRET": "wrong"}, 1, "40125"),
     ({"WECHAT_APP_ID": "wx_other", "WECHAT_APP_SECRET": APP_SECRET}, 1, "40013"),
     ({"WECHAT_APP_ID": APP_ID}, 2, "WECHAT_APP_SECRET must be set")],
    ids=["wrong-secret", "wrong-appid", "missing"],
)
def test_check_errors_exit_non_zero(wx_api: FakeWeChatApi, env: dict[str, str], code: int, message: str) -> None:
    result = cli("wechat", "check", WECHAT_API_BASE=wx_api.url, **env)
    assert result.returncode == code
    assert message in result.stderr


def test_check_with_the_api_down_is_a_clear_error(wx_api: FakeWeChatApi) -> None:
    wx_api.stop()
    result = cli("wechat", "check", WECHAT_APP_ID=APP_ID, WECHAT_APP_SECRET=APP_SECRET, WECHAT_API_BASE=wx_api.url)
    assert result.returncode == 1 and "cannot reach" in result.stderr


def test_outbox_status_counts_rows(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'supportbot.db'}"
    upgrade(url)
    engine = make_engine(url)
    Outbox(make_session_factory(engine)).enqueue_sync(
        "wechat", "wechat:o1", [Delivery("message/custom/send", {"touser": "o1"})] * 2)
    engine.dispose()
    result = cli("outbox", "status", DATA_DIR=str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"wechat": {"pending": 2}}
