"""`forecourt vin`: decode VINs and show every check."""

from __future__ import annotations

import typer
from rich.table import Table
from rich.text import Text

from crawler.cli.common import console, say
from quality import vin_checks, vins

_STYLE = {"ok": "green", "warn": "yellow", "fail": "red", "skip": "dim"}


def register(app: typer.Typer) -> None:
    @app.command("vin")
    def vin(
        numbers: list[str] = typer.Argument(  # noqa: B008
            ..., metavar="VIN", help="One or more VINs (any case, spaces ok)."),
        make: str | None = typer.Option(None, "--make", help="The make the source states."),
        year: int | None = typer.Option(None, "--year", help="The model year it states."),
        model: str | None = typer.Option(None, "--model", help="The model it states."),
        body: str | None = typer.Option(None, "--body", help="The body style it states."),
    ) -> None:
        """Decode VINs offline (NHTSA vPIC data, vininfo fallback) and run every check."""
        failed = 0
        for raw in numbers:
            d = vins.decode(raw)
            results = vin_checks.checks(d, make=make, year=year, model=model, body=body)
            title = f"VIN {d.vin or raw!r}" if d.vin else "VIN (missing)"
            facts = Table(title=title, show_header=False)
            facts.add_column("field")
            facts.add_column("value", overflow="fold")
            for label, value in (
                ("model year", d.model_year), ("make", d.make), ("model", d.model),
                ("series", d.series), ("trim", d.trim), ("body", d.body_class),
                ("vehicle type", d.vehicle_type), ("manufacturer", d.manufacturer),
                ("country", d.country), ("region", d.region), ("WMI", d.wmi),
                ("decoded by", d.decoder), ("vininfo says", d.vininfo_make),
            ):
                if value not in (None, ""):
                    facts.add_row(label, str(value))
            console.print(facts if facts.row_count else title)  # not an empty box
            table = Table(show_lines=False)
            for col in ("check", "result", "detail", "flag"):
                table.add_column(col, overflow="fold")
            for c in results:
                table.add_row(c.name, Text(c.status, style=_STYLE[c.status]), c.detail,
                              c.flag if c.status == "fail" else "")
            console.print(table)
            failed += any(c.status == "fail" for c in results)
        say(f"{len(numbers)} VIN(s), {failed} with failed checks")
