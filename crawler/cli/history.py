"""`forecourt history`: a dealership's inventory events (added, price changes, status
changes, removals, relistings), newest first."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from crawler.cli.common import console, database, price_text, say
from crawler.cli.render import moment
from crawler.db import dealers as dealers_db
from crawler.db import vehicle_reads as vehicles_db


def _field(key: str, x) -> str:
    if x is None:
        return "-"
    if key == "price" and isinstance(x, (int, float)):
        return price_text(x)
    return str(x)


def _value(v) -> str:
    if v is None:
        return ""
    if isinstance(v, dict):
        return ", ".join(f"{k} {_field(k, x)}" for k, x in v.items())
    return json.dumps(v)


def no_events(conn, dealer, slug: str, vin: str | None) -> str:
    """The line shown instead of an empty table: for a VIN, whether the dealer has it at all
    (and if not, which dealer does)."""
    if vin is None:
        return f"no events at {slug}"
    line = f"no events for VIN {vin} at {slug}"
    status = vehicles_db.vin_status(conn, dealer.id, vin)
    if status is not None:  # its events were removed (or never written)
        return line + (f" ({slug} has it, {status}; see `forecourt vehicles {slug} "
                       f"--status {status}`)")
    elsewhere = vehicles_db.dealers_with_vin(conn, vin)
    if elsewhere:
        return line + (f" ({slug} has no vehicle with that VIN; it is at "
                       f"{', '.join(elsewhere)}: `forecourt history {elsewhere[0]} --vin {vin}`)")
    return line + (f" ({slug} has no vehicle with that VIN; see `forecourt vehicles {slug} "
                   "--status all`)")


def register(app: typer.Typer) -> None:
    @app.command("history")
    def history(
        slug: str = typer.Argument(..., help="The dealership's slug."),
        vin: str | None = typer.Option(None, "--vin", help="Only this vehicle's events."),
        limit: int = typer.Option(200, "--limit", min=1, max=100_000),
    ) -> None:
        """Show a dealership's inventory events: added, price_changed, status_changed,
        removed, relisted (with old and new values), newest first."""
        vin = vin.upper() if vin else None
        with database() as conn:
            dealer = dealers_db.get(conn, slug)
            rows = vehicles_db.events_for(conn, dealer.id, vin, limit)
            if not rows:  # a line, not an empty table
                say(no_events(conn, dealer, slug, vin))
                return
        title = f"{dealer.name}: {len(rows)} event(s)" + (f" for {vin}" if vin else "")
        table = Table(title=title)
        for col in ("when (UTC)", "job", "VIN", "event", "old", "new"):
            table.add_column(col, overflow="fold")
        for r in rows:
            table.add_row(*map(str, (  # stored values are text (the console prints no markup)
                moment(r["created_at"]), str(r["job_id"] or ""),
                r["vin"], r["kind"], _value(r["old_value"]), _value(r["new_value"]))))
        console.print(table)
