"""`python -m channels telegram …` against the local Bot API server, as a deployer runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fakes.gateway import ChannelGateway, closed_port_url
from tests.fakes.telegram_api import FakeBotApi, text_update

ROOT = Path(__file__).resolve().parent.parent
SECRET = "cli-Secret_token"


def cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    ours = ("TELEGRAM_", "WECHAT_", "DATABASE_URL", "DATA_DIR", "SUPPORTBOT_SETTINGS_FILE")
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
    full_env.update(env)
    return subprocess.run([sys.executable, "-m", "channels", *args], cwd=ROOT, env=full_env, capture_output=True,
                          text=True, timeout=120)


def test_set_webhook_registers_url_secret_and_update_types(bot_api: FakeBotApi) -> None:
    result = cli("telegram", "set-webhook", "https://bot.example.com/webhooks/telegram",
                 TELEGRAM_BOT_TOKEN=bot_api.token, TELEGRAM_API_BASE=bot_api.url, TELEGRAM_WEBHOOK_SECRET=SECRET)
    assert result.returncode == 0, result.stderr
    assert bot_api.webhook["url"] == "https://bot.example.com/webhooks/telegram"
    assert bot_api.webhook["secret_token"] == SECRET
    assert bot_api.webhook["allowed_updates"] == ["message", "callback_query"]
    info = cli("telegram", "webhook-info", TELEGRAM_BOT_TOKEN=bot_api.token, TELEGRAM_API_BASE=bot_api.url)
    assert info.returncode == 0 and "https://bot.example.com/webhooks/telegram" in info.stdout


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["https://x.example/wh"], {"TELEGRAM_WEBHOOK_SECRET": SECRET}, "TELEGRAM_BOT_TOKEN is not set"),
        (["https://x.example/wh"], {"TELEGRAM_BOT_TOKEN": "1:x"}, "TELEGRAM_WEBHOOK_SECRET is not set"),
        (["http://x.example/wh"], {"TELEGRAM_BOT_TOKEN": "1:x", "TELEGRAM_WEBHOOK_SECRET": SECRET}, "https://"),
    ],
    ids=["no-token", "no-secret", "not-https"],
)
def test_set_webhook_errors_exit_non_zero(args: list[str], env: dict[str, str], message: str) -> None:
    result = cli("telegram", "set-webhook", *args, **env)
    assert result.returncode == 2
    assert message in result.stderr


def test_wrong_token_is_a_clear_error(bot_api: FakeBotApi) -> None:
    result = cli("telegram", "set-webhook", "https://x.example/wh", TELEGRAM_BOT_TOKEN="999:wrong",
                 TELEGRAM_API_BASE=bot_api.url, TELEGRAM_WEBHOOK_SECRET=SECRET)
    assert result.returncode == 1
    assert "Unauthorized" in result.stderr


def test_poll_forwards_updates_to_the_gateway_and_confirms_them(tmp_path: Path, bot_api: FakeBotApi) -> None:
    gw = ChannelGateway(tmp_path, closed_port_url(), telegram_bot_token=bot_api.token,
                        telegram_webhook_secret=SECRET, telegram_api_base=bot_api.url).start()
    try:
        bot_api.webhook = {"url": "https://old.example/wh"}  # polling must remove it first
        bot_api.queue_update(text_update(501, 4242, "hello from polling"))
        bot_api.queue_update(text_update(502, 4242, "second message"))
        env = {"TELEGRAM_BOT_TOKEN": bot_api.token, "TELEGRAM_API_BASE": bot_api.url, "TELEGRAM_WEBHOOK_SECRET": SECRET}
        result = cli("telegram", "poll", "--once", "--gateway", gw.url, **env)
        assert result.returncode == 0, result.stderr
        assert bot_api.webhook == {}
        rows = gw.query("select external_id, text from channel_inbound order by id")
        assert [tuple(r) for r in rows] == [("u501", "hello from polling"), ("u502", "second message")]
        # Confirmed to Telegram: the next round gets nothing, and nothing is processed twice.
        assert cli("telegram", "poll", "--once", "--gateway", gw.url, **env).returncode == 0
        assert gw.count("channel_inbound") == 2
        offsets = [c.params.get("offset") for c in bot_api.calls_to("getUpdates")]
        assert 503 in offsets
    finally:
        gw.stop()
