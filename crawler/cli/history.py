"""`forecourt history`: a dealership's inventory events (added, price changes, status
changes, removals, relistings), newest first."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from crawler.cli.common import console, database, price_text
from crawler.db import dealers as dealers_db
from crawler.db import vehicles as vehicles_db


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


def register(app: typer.Typer) -> None:
    @app.command("history")
    def history(
        slug: str = typer.Argument(..., help="The dealership's slug."),
        vin: str | None = typer.Option(None, "--vin", help="Only this vehicle's events."),
        limit: int = typer.Option(200, "--limit", min=1, max=100_000),
    ) -> None:
        """Show a dealership's inventory events: added, price_changed, status_changed,
        removed, relisted (with old and new values), newest first."""
        with database() as conn:
            dealer = dealers_db.get(conn, slug)
            rows = vehicles_db.events_for(conn, dealer.id, vin.upper() if vin else None,
                                          limit)
        title = f"{dealer.name}: {len(rows)} event(s)" + (f" for {vin.upper()}" if vin else "")
        table = Table(title=title)
        for col in ("when (UTC)", "job", "VIN", "event", "old", "new"):
            table.add_column(col, overflow="fold")
        for r in rows:
            table.add_row(*map(str, (  # stored values are text (the console prints no markup)
                r["created_at"].strftime("%Y-%m-%d %H:%M:%S"), str(r["job_id"] or ""),
                r["vin"], r["kind"], _value(r["old_value"]), _value(r["new_value"]))))
        console.print(table)
