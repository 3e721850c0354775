"""Email the ticket with its transcript to a helpdesk address over SMTP (STARTTLS, SSL or plain)."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from typing import Any

from anyio import to_thread

from handoff.adapters.webhook import DeliveryFailed


def render(event: str, payload: dict[str, Any]) -> tuple[str, str]:
    """(subject, plain-text body): the summary, the facts, then the whole transcript."""
    t = payload["ticket"]
    subject = f"[support ticket #{t['id']}] {t['reason'].replace('_', ' ')}" + (f" ({t['rule']})" if t.get("rule") else "")
    lines = [
        f"Event: {event}",
        f"Ticket #{t['id']} · {t['status']} · priority {t.get('priority_label', t['priority'])} · queue {t['queue']}",
        f"Customer: {t['sender_id']} on {t['channel']}, language {t['language']}",
        "",
        "Summary:",
        t.get("summary") or "",
        "",
    ]
    customer = t.get("customer") or {}
    if customer:
        lines += ["Customer identity:"] + [f"  {k}: {v}" for k, v in customer.items()] + [""]
    slots = (t.get("context") or {}).get("slots") or {}
    if slots:
        lines += ["What the bot collected:"] + [f"  {k}: {v}" for k, v in slots.items()] + [""]
    lines.append("Transcript:")
    for m in t.get("transcript") or []:
        who = m["from"] if m["from"] != "agent" else f"agent {m.get('agent') or ''}".strip()
        lines.append(f"  [{m['created_at']}] {who} ({m['channel']}, {m['language']}): {m['text']}")
    return subject, "\n".join(lines) + "\n"


class EmailAdapter:
    name = "email"

    def __init__(self, host: str, port: int, sender: str, to: str, *, tls: str = "starttls", username: str = "",
                 password: str = "", timeout_s: float = 15.0, ssl_context: ssl.SSLContext | None = None) -> None:
        if tls not in ("starttls", "ssl", "none"):
            raise ValueError("handoff_smtp_tls must be starttls, ssl or none")
        self.host, self.port, self.sender, self.to = host, port, sender, to
        self.tls, self.username, self.password, self.timeout_s = tls, username, password, timeout_s
        self.ssl_context = ssl_context or ssl.create_default_context()

    async def close(self) -> None:
        return None

    async def deliver(self, delivery_id: int, event: str, payload: dict[str, Any]) -> None:
        subject, body = render(event, payload)
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = self.sender, self.to, subject
        msg["X-Supportbot-Delivery"] = str(delivery_id)
        msg.set_content(body)
        try:
            await to_thread.run_sync(self._send, msg)
        except (OSError, smtplib.SMTPException) as err:
            raise DeliveryFailed(f"{err.__class__.__name__}: {err}") from err

    def _send(self, msg: EmailMessage) -> None:
        if self.tls == "ssl":
            client: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout_s, context=self.ssl_context)
        else:
            client = smtplib.SMTP(self.host, self.port, timeout=self.timeout_s)
        with client:
            if self.tls == "starttls":
                client.starttls(context=self.ssl_context)
            if self.username:
                client.login(self.username, self.password)
            client.send_message(msg)
