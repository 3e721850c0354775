"""The demo store: the business system the support bot talks to.

- ``store.policies`` — every business rule, as pure functions (no database, no clock).
- ``store.models`` — the SQLAlchemy tables.
- ``store.service`` — ``OrdersService`` (what the bot depends on) and its SQL implementation.
- ``store.seed`` — deterministic demo data and the well-known ``DEMO`` orders.

Kept free of imports so that ``import store.policies`` stays cheap.
"""
