"""Outbound adapters for teams that already have a helpdesk: a signed webhook and SMTP email.
Both are fed by the outbox (``handoff.adapters.outbox``), so nothing is lost while a peer is down."""
