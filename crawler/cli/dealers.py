"""`forecourt dealers`: add and list dealerships."""

from __future__ import annotations

import re

import typer
from rich.table import Table

from crawler.cli.common import console, database
from crawler.db import dealers as dealers_db
from crawler.errors import ForecourtError, InvalidInput
from crawler.urls import check_http_url

_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


def _detected_platform(url: str) -> str | None:
    """The platform detected from the dealer's page; None (the generic spider) when the page
    cannot be fetched or names no platform forecourt has a spider for."""
    from crawler.cli.detect import fetch_page
    from spiders.detect import detect, stored_platform

    try:
        text, final_url = fetch_page(url)
    except ForecourtError as exc:
        console.print(f"platform not detected ({exc}): stored as generic; "
                      f"set it with --platform", markup=False)
        return None
    found = detect(text, final_url)
    if found.page_kind == "blocked":
        console.print("platform not detected (the page is a bot challenge): stored as "
                      "generic; set it with --platform", markup=False)
        return None
    rendered = ", pages rendered in the headless browser" if found.renders else ""
    console.print(f"detected platform: {found.platform or 'unknown'}; crawl path: "
                  f"{found.path} ({found.spider} spider{rendered})", markup=False)
    return stored_platform(found)


def register(app: typer.Typer) -> None:
    dealers_app = typer.Typer(help="Dealerships: add, list.", no_args_is_help=True)
    app.add_typer(dealers_app, name="dealers")

    @dealers_app.command("add")
    def add(
        slug: str = typer.Argument(..., help="Short unique name, e.g. maple-ridge-motors."),
        name: str = typer.Option(..., "--name", help="The dealership's name."),
        url: str | None = typer.Option(None, "--url", help="Website to crawl."),
        platform: str | None = typer.Option(None, "--platform",
                                            help="Website platform (detected when omitted)."),
        feed_url: str | None = typer.Option(None, "--feed", help="Inventory feed path or URL."),
    ) -> None:
        """Add a dealership."""
        if not _SLUG.match(slug):
            raise InvalidInput(f"slug {slug!r} is not valid",
                               hint="use lower-case letters, digits and dashes, e.g. acme-motors")
        if not url and not feed_url:
            raise InvalidInput("a dealer needs --url or --feed", hint="give its website or feed")
        if url:
            check_http_url(url)
        if feed_url and "://" in feed_url:  # a feed URL is fetched too: same address rules
            check_http_url(feed_url)
        if url and not platform:
            platform = _detected_platform(url)
        with database() as conn:
            dealer = dealers_db.create(conn, slug=slug, name=name, website_url=url,
                                       platform=platform, feed_url=feed_url)
        console.print(f"added dealership {dealer.slug} (id {dealer.id})")

    @dealers_app.command("list")
    def list_cmd() -> None:
        """List dealerships with their active vehicles and last job."""
        with database() as conn:
            rows = dealers_db.list_all(conn)
        table = Table(title=f"{len(rows)} dealership(s)")
        for col in ("slug", "name", "platform", "website / feed", "active", "last job", "paused"):
            table.add_column(col)
        for r in rows:
            table.add_row(r["slug"], r["name"], r["platform"] or "-",
                          r["website_url"] or r["feed_url"] or "-", str(r["active_vehicles"]),
                          r["last_job_state"] or "-", "yes" if r["paused"] else "no")
        console.print(table)
