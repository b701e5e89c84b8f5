"""`forecourt detect`: which platform a dealer site runs on and the path a crawl will take."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from crawler.cli import common
from crawler.cli.common import console
from crawler.errors import InvalidInput, Transient
from crawler.urls import check_http_url

if TYPE_CHECKING:  # imported where used: spiders.detect loads Scrapy (~0.3 s), and every
    # `forecourt` command registers this module
    from spiders.detect import Detection

# `dealers add` prints its own fix (`dealers set --platform`); `detect` has no --platform.
_FETCH_FIX = "check the URL, or save the page from a browser and give its file"


def fetch_page(url: str, timeout_s: float = 20.0) -> tuple[str, str]:
    """(HTML, final URL) of a dealer page; Transient when it cannot be fetched."""
    import httpx

    from crawler import netguard
    from crawler.config import get_settings

    check_http_url(url)
    try:  # checked connections only (no private or metadata addresses, redirects too)
        with netguard.safe_client(timeout=timeout_s, follow_redirects=True,
                                  headers={"User-Agent": get_settings().user_agent}) as client, \
                common.busy(f"fetching {url} ..."):
            response = client.get(url)
    except httpx.HTTPError as exc:
        raise Transient(f"cannot fetch {url}: {exc or type(exc).__name__}",
                        hint=_FETCH_FIX) from exc
    if response.status_code >= 400:
        raise Transient(f"cannot fetch {url}: HTTP {response.status_code}",
                        hint=_FETCH_FIX)
    return response.text, str(response.url)


def detect_url_or_file(page: str, url: str | None = None) -> Detection:
    from spiders.detect import detect

    if page.startswith(("http://", "https://")):
        text, final_url = fetch_page(page)
        return detect(text, url or final_url)
    path = Path(page)
    if not path.is_file():
        raise InvalidInput(f"no file {page!r}", hint="give a saved page or a URL")
    return detect(path.read_text(errors="replace"), url or path.resolve().as_uri())


def register(app: typer.Typer) -> None:
    @app.command("detect")
    def detect_cmd(
        page: str = typer.Argument(..., help="A dealer site URL or a saved page."),
        url: str | None = typer.Option(None, "--url",
                                       help="The page's original URL (for a saved page)."),
    ) -> None:
        """Name a site's platform from page signals and the path a crawl will take."""
        found = detect_url_or_file(page, url)
        table = Table(title=f"platform: {found.platform or 'unknown'}", show_header=False)
        table.add_column("what")
        table.add_column("value")
        table.add_row("platform", found.platform or "unknown (no platform signals)")
        table.add_row("spider", found.spider)
        table.add_row("path", f"{found.path}: {found.detail}")
        table.add_row("browser", "yes: pages are rendered in headless Chromium" if found.renders
                      else "no: plain HTTP (a listing page that shows no vehicles is rendered)")
        table.add_row("vehicles on page", str(found.vehicles_on_page))
        table.add_row("page", found.page_kind)
        for i, signal in enumerate(found.signals or ["none"]):
            table.add_row("signals" if i == 0 else "", signal)
        console.print(table)
