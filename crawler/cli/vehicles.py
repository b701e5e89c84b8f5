"""`forecourt vehicles`: the stored vehicles of a dealership."""

from __future__ import annotations

import typer
from rich.table import Table

from crawler.cli.common import console, database, price_text
from crawler.db import dealers as dealers_db
from crawler.db import vehicle_reads as vehicles_db

STATUSES = ("active", "removed", "all")


def _status(value: str) -> str:
    if value not in STATUSES:
        raise typer.BadParameter(f"unknown status {value!r}; use active, removed or all")
    return value


def register(app: typer.Typer) -> None:
    @app.command("vehicles")
    def vehicles(
        slug: str = typer.Argument(..., help="The dealership's slug."),
        status: str = typer.Option("active", "--status", callback=_status,
                                   help="active, removed or all."),
        limit: int = typer.Option(100, "--limit", min=1, max=100_000),
    ) -> None:
        """Show a dealership's stored vehicles."""
        with database() as conn:
            dealer = dealers_db.get(conn, slug)
            rows = vehicles_db.list_for(conn, dealer.id, None if status == "all" else status,
                                        limit)
        table = Table(title=f"{dealer.name}: {len(rows)} vehicle(s) ({status})")
        for col in ("VIN", "year", "make", "model", "trim", "cond.", "miles", "price",
                    "quality", "flags", "status", "days on lot"):
            table.add_column(col, overflow="fold")
        for r in rows:
            # values come from dealer sites and feeds: shown as text, never as rich markup
            table.add_row(*map(str, (
                r["vin"], str(r["year"] or ""), r["make"] or "", r["model"] or "",
                r["trim"] or "", r["condition"] or "",
                f"{r['mileage']:,}" if r["mileage"] is not None else "",
                price_text(r["price"]) if r["price"] is not None else "",
                str(r["quality_score"]), ", ".join(r["quality_flags"]), r["status"],
                str(r.get("days_on_lot", "")))))
        console.print(table)
