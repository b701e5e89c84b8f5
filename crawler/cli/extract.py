"""`forecourt extract`: what forecourt would extract from one page, as JSON lines."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from crawler.cli import common
from crawler.cli.common import err_console, say
from crawler.errors import InvalidInput
from crawler.urls import check_http_url


def _fetch(url: str) -> tuple[str, int]:
    import httpx

    from crawler import netguard

    check_http_url(url)
    try:  # checked connections, redirects too (as `detect` and crawls fetch)
        with netguard.safe_client(timeout=30, follow_redirects=True,
                                  headers={"User-Agent": "forecourt-extract/0.1"}) as client, \
                common.busy(f"fetching {url} ..."):
            response = client.get(url)
    except httpx.HTTPError as exc:
        raise InvalidInput(f"cannot fetch {url}: {exc}", hint="check the URL") from exc
    return response.text, response.status_code


def _render(url: str, wait_for: str | None):
    """The page as a crawl's browser leaves it (crawler.rendering.RenderedPage)."""
    from crawler import rendering

    check_http_url(url)
    with common.busy(f"rendering {url} in headless Chromium ..."):
        return rendering.render(url, wait_for)


def item_json(item, raw: bool) -> dict:
    return item.model_dump(mode="json", exclude_none=True, exclude=None if raw else {"raw"})


def _case_file(page: Path) -> Path:
    """Where `--record` saves a saved page's result: <case>.json beside <case>.html (or
    <case>.api, the saved-page name of a JSON response), never over the page itself."""
    case = page.with_suffix(".json")
    if page.suffix.lower() == ".json" or case.resolve() == page.resolve():
        raise InvalidInput(f"--record would overwrite the page {str(page)!r} with its result",
                           hint=f"save a JSON response as {case.with_suffix('.api').name}; "
                                "its result is recorded beside it as "
                                f"{case.name}")
    return case


def no_items_hint(text: str, page: str, page_url: str, is_url: bool) -> str | None:
    """Where a crawl would find the vehicles of a page that gave none, as `forecourt detect`
    says it: the platform's own path (an inventory API, its results page), a rendering, or
    the site's links. None when detect has nothing to add."""
    from spiders import chain
    from spiders.detect import detect

    found = detect(text, page_url)
    see = f"`forecourt detect {page}` shows the path"
    if found.renders:
        how = "try --render" if is_url else (
            f"extract {page_url} with --render" if page_url.startswith("http")
            else "extract the page's URL with --render")
        return (f"the page looks JavaScript-rendered ({found.signals[-1]}): {how}, "
                f"as a crawl renders it ({see})")
    if found.path == chain.STEP_PLATFORM:
        return (f"this {found.platform} page has no vehicles in its HTML; a crawl finds them by "
                f"the platform's path: {found.detail} ({see}; `forecourt crawl <slug>` runs it)")
    if found.path == chain.STEP_LINKS:
        return (f"no vehicles on this page: a crawl follows the site's sitemaps and links to "
                f"vehicle pages ({see}; `forecourt crawl <slug>` runs it)")
    return None


def register(app: typer.Typer) -> None:
    @app.command("extract")
    def extract(
        page: str = typer.Argument(..., help="A saved page (HTML or JSON) or a URL."),
        url: str | None = typer.Option(None, "--url",
                                       help="The page's original URL (for a saved page)."),
        platform: str | None = typer.Option(None, "--platform",
                                            help="Extract as this platform (default: detect)."),
        raw: bool = typer.Option(False, "--raw", help="Include the source's raw fields."),
        record: bool = typer.Option(False, "--record",
                                    help="Save the result as <page>.json: a saved-page test case."),
        render: bool | None = typer.Option(
            None, "--render/--no-render",
            help="Render the URL in headless Chromium first, as a crawl would "
                 "(default: with --platform javascript)."),
        wait_for: str | None = typer.Option(None, "--wait-for",
                                            help="With --render: a CSS selector to wait for."),
    ) -> None:
        """Print, as JSON lines, the items forecourt would extract from a page; store nothing."""
        if platform is not None:  # not silently 0 items from a platform with no extractor
            from spiders.registry import check_platform

            check_platform(platform)
        is_url = page.startswith(("http://", "https://"))
        if record and is_url:
            raise InvalidInput("--record works on saved pages", hint="save the page first")
        if render and not is_url:
            raise InvalidInput("--render works on URLs", hint="give the page's URL")
        case = None  # where --record saves the result; refused before any output
        rendered = None
        if is_url and (render or (render is None and platform == "javascript")):
            rendered = _render(page, wait_for)
            text, status, page_url = rendered.html, rendered.status, url or rendered.url
        elif is_url:
            text, status = _fetch(page)
            page_url = url or page
        else:
            path = Path(page)
            if not path.is_file():
                raise InvalidInput(f"no file {page!r}", hint="give a saved page or a URL")
            if record:
                case = _case_file(path)
            text, status = path.read_text(errors="replace"), 200
            page_url = url or path.resolve().as_uri()
        from spiders.extract.dispatch import extract_page  # parsel, lxml: this command's own

        kind, items = extract_page(text, page_url, platform, status)
        doubts: list[str] = []
        if rendered is not None:  # what a crawl would make of the rendered page
            from crawler import rendering

            kind, doubts = rendering.listing_problems(page, rendered.url, kind, len(items),
                                                      rendered.notes)
        rows = [item_json(i, raw) for i in items]
        for row in rows:
            sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")
        # a page that answered an error says so: "other: 0 item(s)" alone hid a 500
        answered = f" (HTTP {status})" if status != 200 else ""
        how = "" if rendered is None else " (rendered" + (
            f"; {rendered.notes.more_rounds} round(s) of scrolling or load more"
            if rendered.notes.more_rounds else "") + (
            "" if rendered.notes.settled else "; its network never went quiet") + ")"
        err_console.print(f"# {kind}: {len(items)} item(s) from {page_url}{answered}{how}",
                          markup=False, soft_wrap=True)
        for doubt in doubts:
            err_console.print(f"# problem: {doubt}", markup=False, soft_wrap=True)
        from crawler import pages

        if not items and rendered is None and kind == pages.OTHER and status < 400:
            hint = no_items_hint(text, page, page_url, is_url)
            if hint:
                err_console.print(f"# hint: {hint}", markup=False, soft_wrap=True)
        if case is not None:
            case.write_text(json.dumps({"url": page_url, "platform": platform,
                                        "classification": kind,
                                        "items": [item_json(i, False) for i in items]},
                                       indent=1, ensure_ascii=False) + "\n")
            say(f"recorded {case}")
