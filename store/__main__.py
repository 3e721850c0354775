"""Command line: ``python -m store seed`` and ``python -m store show ORDER_ID``.

Both use the configured database (``settings.sqlalchemy_url``) and bring it to the latest
migration first, so they work on a fresh checkout.
"""

from __future__ import annotations

from datetime import UTC, datetime

import typer
from sqlalchemy.orm import Session, sessionmaker

from settings import get_settings
from storage.db import make_engine, make_session_factory, upgrade
from store.seed import DEMO, seed
from store.service import OrderView, SqlOrdersService

app = typer.Typer(help="Demo store: seed the database, inspect orders.", no_args_is_help=True)


def _factory() -> sessionmaker[Session]:
    url = get_settings().sqlalchemy_url
    upgrade(url)
    return make_session_factory(make_engine(url))


def _print_order(view: OrderView) -> None:
    c = view.customer
    typer.echo(f"Order {view.order_id}: {view.status}")
    typer.echo(f"  customer   {c.full_name} ({c.username}, {c.email}, {c.membership_level})")
    typer.echo(f"  ordered    {view.ordered_at:%Y-%m-%d %H:%M} UTC")
    if view.shipped_at:
        typer.echo(f"  shipped    {view.shipped_at:%Y-%m-%d} via {view.carrier} {view.tracking_number}")
    if view.delivered_at:
        typer.echo(f"  delivered  {view.delivered_at:%Y-%m-%d}")
    typer.echo(f"  ship to    {view.shipping_address}")
    typer.echo(f"  paid       {view.total} {view.currency} by {view.payment_method}")
    for i in view.items:
        typer.echo(f"  - {i.quantity} x {i.product_name} ({i.size}, {i.colour}) @ {i.unit_price}")
    if view.refund:
        r = view.refund
        typer.echo(f"  refund     {r.amount} to {r.method}: {r.status} ({r.reason})")
    if view.return_request:
        r = view.return_request
        typer.echo(f"  return     {r.rma_code}: {r.status} ({r.reason})")


@app.command("seed")
def seed_command(
    reference: str = typer.Option("", help="Reference date (ISO, UTC) the demo dates are relative to; default: now."),
) -> None:
    """Fill an empty store with the deterministic demo data (does nothing if it has customers)."""
    ref = None
    if reference:
        parsed = datetime.fromisoformat(reference)
        ref = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    if seed(_factory(), ref):
        typer.echo("Seeded the demo store. Well-known orders:")
        for name, demo in DEMO.items():
            typer.echo(f"  {name:22} {demo.order_id}  {demo.username:14} {demo.email}")
    else:
        typer.echo("The store already has customers; nothing changed.")


@app.command("show")
def show_command(order_id: str) -> None:
    """Print one order with its items, refund and return."""
    view = SqlOrdersService(_factory()).get_order(order_id)
    if view is None:
        typer.echo(f"No order {order_id}.", err=True)
        raise typer.Exit(code=1)
    _print_order(view)


if __name__ == "__main__":
    app()
