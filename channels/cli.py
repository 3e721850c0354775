"""``python -m channels``: deployment and development commands for the push channels.

    telegram set-webhook URL     point Telegram at /webhooks/telegram (with the secret token)
    telegram delete-webhook      stop webhook delivery (needed before polling)
    telegram webhook-info        what Telegram has configured and how many updates wait
    telegram poll                development without a public URL: getUpdates → local webhook
    wechat check                 fetch an access token: proves WECHAT_APP_ID/SECRET and the API base
    outbox status                outbox rows per channel and status

Settings come from the same environment / TOML file as the gateway. Errors exit non-zero.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any, Protocol

import httpx
import typer
from rich.console import Console

from channels.telegram import HANDLED_UPDATES, SECRET_HEADER, BotApi, TelegramApiError
from settings import Settings, get_settings

app = typer.Typer(help="Push channels: Telegram, WeChat, outbox.", no_args_is_help=True)
telegram_app = typer.Typer(help="Telegram Bot API: webhook and long polling.", no_args_is_help=True)
wechat_app = typer.Typer(help="WeChat Official Account.", no_args_is_help=True)
outbox_app = typer.Typer(help="The outbound message outbox.", no_args_is_help=True)
app.add_typer(telegram_app, name="telegram")
app.add_typer(wechat_app, name="wechat")
app.add_typer(outbox_app, name="outbox")

console = Console()
err_console = Console(stderr=True)
log = logging.getLogger(__name__)


def _fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {message}")
    return typer.Exit(code)


def _bot(settings: Settings) -> BotApi:
    token = settings.telegram_bot_token.get_secret_value()
    if not token:
        raise _fail("TELEGRAM_BOT_TOKEN is not set", 2)
    return BotApi(token, settings.telegram_api_base, settings.channel_api_timeout_s)


class _Client(Protocol):
    async def close(self) -> None: ...


@contextlib.asynccontextmanager
async def _failing_on_errors(api: _Client, api_error: type[Exception], base_url: str) -> AsyncIterator[None]:
    """Run API calls: the API's refusal (``api_error``) or an unreachable ``base_url`` ends the command
    with the reason; the client is closed either way."""
    try:
        yield
    except api_error as err:
        raise _fail(str(err)) from err
    except httpx.HTTPError as err:
        raise _fail(f"cannot reach {base_url}: {err.__class__.__name__}") from err
    finally:
        await api.close()


async def _call(settings: Settings, method: str, params: dict[str, Any] | None = None) -> Any:
    api = _bot(settings)
    async with _failing_on_errors(api, TelegramApiError, settings.telegram_api_base):
        return await api.call(method, params)


@telegram_app.command("set-webhook")
def set_webhook(
    url: Annotated[str, typer.Argument(help="public HTTPS URL of /webhooks/telegram")],
    drop_pending: Annotated[bool, typer.Option(help="discard updates Telegram has queued")] = False,
) -> None:
    """Register the webhook with the secret token from TELEGRAM_WEBHOOK_SECRET."""
    settings = get_settings()
    secret = settings.telegram_webhook_secret.get_secret_value()
    if not secret:
        raise _fail("TELEGRAM_WEBHOOK_SECRET is not set; the webhook refuses requests without it", 2)
    if not url.startswith("https://"):
        raise _fail("Telegram delivers webhooks only to https:// URLs", 2)
    params = {"url": url, "secret_token": secret, "allowed_updates": list(HANDLED_UPDATES),
              "drop_pending_updates": drop_pending}
    asyncio.run(_call(settings, "setWebhook", params))
    console.print(f"webhook set: {url}")


@telegram_app.command("delete-webhook")
def delete_webhook(drop_pending: bool = False) -> None:
    asyncio.run(_call(get_settings(), "deleteWebhook", {"drop_pending_updates": drop_pending}))
    console.print("webhook deleted")


@telegram_app.command("webhook-info")
def webhook_info() -> None:
    info = asyncio.run(_call(get_settings(), "getWebhookInfo"))
    console.print_json(data=info)


@telegram_app.command("poll")
def poll(
    gateway: Annotated[str, typer.Option(help="the running gateway")] = "",
    once: Annotated[bool, typer.Option(help="one getUpdates round, then exit (for scripts and tests)")] = False,
    timeout: Annotated[int, typer.Option(help="long-poll timeout in seconds")] = 30,
) -> None:
    """Long polling for development: fetch updates and hand each to the gateway's webhook.

    The webhook is removed first (Telegram refuses getUpdates while one is set). An update is
    confirmed to Telegram (offset) only after the gateway took it, so nothing is lost while the
    gateway restarts; the gateway de-duplicates by update_id, so re-sending is harmless.
    """
    settings = get_settings()
    secret = settings.telegram_webhook_secret.get_secret_value()
    if not secret:
        raise _fail("TELEGRAM_WEBHOOK_SECRET is not set (the local webhook needs it too)", 2)
    target = (gateway or f"http://127.0.0.1:{settings.port}").rstrip("/") + "/webhooks/telegram"
    try:
        asyncio.run(_poll(settings, target, secret, once, timeout))
    except KeyboardInterrupt:
        console.print("stopped")


async def _poll(settings: Settings, target: str, secret: str, once: bool, timeout: int) -> None:
    api = _bot(settings)
    offset = 0
    try:
        await api.call("deleteWebhook", {"drop_pending_updates": False})
        async with httpx.AsyncClient(timeout=120) as http:
            console.print(f"polling Telegram, forwarding to {target}")
            while True:
                try:
                    updates = await api.call("getUpdates", {
                        "offset": offset, "timeout": 0 if once else timeout, "allowed_updates": list(HANDLED_UPDATES),
                    }, timeout_s=timeout + 15)
                except TelegramApiError as err:
                    if err.error_code in (401, 404, 409):  # wrong token, or a webhook was set again
                        raise _fail(str(err)) from err
                    await asyncio.sleep(err.retry_after or 2)
                    continue
                except httpx.HTTPError as err:
                    log.warning("getUpdates failed: %s", err.__class__.__name__)
                    await asyncio.sleep(2)
                    continue
                for update in updates:
                    offset = await _forward(http, target, secret, update, offset)
                if once:
                    if updates:  # confirm what was forwarded, as the next poll would
                        await api.call("getUpdates", {"offset": offset, "timeout": 0, "limit": 1})
                    return
    finally:
        await api.close()


async def _forward(http: httpx.AsyncClient, target: str, secret: str, update: dict[str, Any], offset: int) -> int:
    """POST one update to the gateway until it takes it; returns the new offset."""
    while True:
        try:
            resp = await http.post(target, json=update, headers={SECRET_HEADER: secret})
        except httpx.HTTPError as err:
            err_console.print(f"gateway unreachable ({err.__class__.__name__}); retrying")
            await asyncio.sleep(2)
            continue
        if resp.status_code in (401, 403, 404):
            raise _fail(f"gateway refused the update: HTTP {resp.status_code} {resp.text[:200]}")
        if resp.status_code >= 500:
            await asyncio.sleep(2)
            continue
        if resp.status_code >= 400:  # malformed update: Telegram would not resend it either
            err_console.print(f"update {update.get('update_id')} refused: {resp.text[:200]}")
        return max(offset, int(update["update_id"]) + 1)


@wechat_app.command("check")
def wechat_check() -> None:
    """Fetch an access token with WECHAT_APP_ID / WECHAT_APP_SECRET (the token is not printed)."""
    from channels.wechat_api import WeChatApi, WeChatApiError

    settings = get_settings()
    if not settings.wechat_app_id or not settings.wechat_app_secret.get_secret_value():
        raise _fail("WECHAT_APP_ID and WECHAT_APP_SECRET must be set", 2)

    async def check() -> None:
        api = WeChatApi(settings.wechat_app_id, settings.wechat_app_secret.get_secret_value(),
                        settings.wechat_api_base, settings.channel_api_timeout_s)
        async with _failing_on_errors(api, WeChatApiError, settings.wechat_api_base):
            await api.access_token()

    asyncio.run(check())
    console.print("WeChat credentials work: access token fetched")


@outbox_app.command("status")
def outbox_status() -> None:
    """Rows per channel and status (pending ones are still being retried)."""
    from channels.outbox import Outbox
    from storage.db import make_engine, make_session_factory, upgrade

    settings = get_settings()
    upgrade(settings.sqlalchemy_url)
    engine = make_engine(settings.sqlalchemy_url)
    try:
        counts = Outbox(make_session_factory(engine)).counts()
    finally:
        engine.dispose()
    console.print_json(data=counts)
