"""Classify a fetched page: inventory, empty inventory, not found, or blocked.

A run that meets blocked or not-found listing pages must say so and must never be read as
"the dealer sold everything". The signals are the ones real pages carry:

- blocked: HTTP 401/403/429, or a bot challenge served with 200/403/503 — DataDome
  (`captcha-delivery.com`, `dd={...}` config, the `datadome` cookie), Cloudflare ("Just a
  moment...", `/cdn-cgi/challenge-platform/`, `cf_chl_opt`, Turnstile, "Attention Required!"),
  PerimeterX, Imperva/Incapsula, Akamai "Access Denied", generic "verify you are human";
- not found: HTTP 404/410, or a "Page Not Found" page served with 200 (a soft 404), or a
  detail page saying the vehicle is no longer available;
- empty: a results page saying it has no vehicles ("0 Vehicles", "No vehicles found");
- inventory: the extractor found vehicles (a page with vehicles is never blocked or empty).

Only the head of a page (200 KB) is searched; challenge and error pages are small.

Two more questions about a page that gave no vehicles, asked by the spiders where it matters:
`error_page` (a rate-limit or server error page served with 200: its title or heading says
so) and `cut_short` (the page stops mid-document; see there for why that signal is safe).
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

INVENTORY = "inventory"
EMPTY = "empty"
NOT_FOUND = "not_found"
BLOCKED = "blocked"
OTHER = "other"

KINDS = (INVENTORY, EMPTY, NOT_FOUND, BLOCKED, OTHER)

_BLOCK_SIGNS = re.compile(
    r"captcha-delivery\.com|\bdatadome\b|var\s+dd\s*=\s*\{\s*['\"]rt['\"]|"
    r"cf-challenge|/cdn-cgi/challenge-platform/|challenge-platform|cf_chl_|cf-turnstile|"
    r"cf-browser-verification|attention required!? \| cloudflare|just a moment\.\.\.|"
    r"px-captcha|perimeterx|_pxappid|distil_r_captcha|are you a (robot|human)|"
    r"verify(ing)? you are (a )?human|checking (if the site connection is secure|your browser)|"
    r"access denied</title>|you don.t have permission to access|"
    r"request unsuccessful\. incapsula|_incapsula_resource|pardon our interruption",
    re.I,
)
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.I | re.S)
_H1 = re.compile(r"<h1[^>]*>(.*?)</h1>", re.I | re.S)
_NOT_FOUND_HEADING = re.compile(
    r"page not found|\b404\b|not found|page (cannot|can.t|could not) be found|"
    r"no longer available|page (you requested )?(doesn.t|does not) exist|"
    r"(vehicle|page) (has been|was) (sold|removed)",
    re.I,
)
_NOT_FOUND_BODY = re.compile(
    r"the page you (requested|are looking for|were looking for) (could not|cannot|can.t) be "
    r"found|this vehicle is no longer available|we can.t (seem to )?find (that|the) page",
    re.I,
)
_EMPTY_SIGNS = re.compile(
    r"no (vehicles|results|matches|inventory|cars) (were )?(found|available|match)|"
    r"\b0 (vehicles|results|matches|cars)\b|results:\s*0 vehicles|"
    r"we couldn.t find any (vehicles|matches|results)|"
    r"there are (currently )?no (vehicles|results)|no vehicles match|"
    r"srp_carbon_results__count--digits\">\s*0\s*<|data-result-count=\"0\"",
    re.I,
)


_ERROR_HEADING = re.compile(
    r"too many requests|rate limit|service (is )?(temporarily )?unavailable|"
    r"temporarily unavailable|internal server error|\bserver error\b|bad gateway|"
    r"gateway time-?out|something went wrong|an (unexpected )?error (has )?occurred|"
    r"unexpected error|(down|undergoing|under) (for )?(scheduled )?maintenance",
    re.I,
)
_DOCUMENT_START = re.compile(r"(?:\ufeff)?\s*(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html[\s>])",
                             re.I | re.S)
_DOCUMENT_END = re.compile(r"</(?:body|html)\s*>", re.I)
# elements whose end tag HTML never lets a page leave out (unlike </p>, </li>, </body>)
_MUST_CLOSE = frozenset(
    "a article aside div footer form header main nav ol script section select span style "
    "table template textarea ul".split())


def _heading_text(head: str) -> str:
    parts = [m.group(1) for m in _TITLE.finditer(head[:20_000])][:1]
    parts += [m.group(1) for m in _H1.finditer(head)][:2]
    return " ".join(re.sub(r"<[^>]+>", " ", p) for p in parts)


def classify(status: int, body: str, vehicles_found: int) -> str:
    """What kind of page this is, from its status, its text and how many vehicles it held."""
    head = body[:200_000]
    if status in (401, 403, 429):
        return BLOCKED
    if vehicles_found == 0 and status in (200, 202, 503) and _BLOCK_SIGNS.search(head):
        return BLOCKED
    if status in (404, 410):
        return NOT_FOUND
    if vehicles_found:
        return INVENTORY
    if _NOT_FOUND_HEADING.search(_heading_text(head)) or _NOT_FOUND_BODY.search(head):
        return NOT_FOUND
    if _EMPTY_SIGNS.search(head):
        return EMPTY
    return OTHER


def error_page(body: str) -> str | None:
    """The title or heading of a rate-limit or server error page ("Too Many Requests",
    "Service Unavailable"), or None. Meant for pages answered with 200 that gave no
    vehicles; a page whose title and headings say no such thing is not one."""
    heading = " ".join(_heading_text(body[:200_000]).split())
    return heading[:120] if _ERROR_HEADING.search(heading) else None


class _OpenElements(HTMLParser):
    """The elements a page leaves open (only those whose end tag is never optional)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.open: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in _MUST_CLOSE:
            self.open.append(tag)

    def handle_startendtag(self, tag, attrs):
        pass  # <div/>: nothing left open

    def handle_endtag(self, tag):
        if tag in self.open:  # tolerant: a stray end tag closes what it can
            del self.open[len(self.open) - 1 - self.open[::-1].index(tag):]


def cut_short(body: str) -> str | None:
    """How an HTML page shows it was cut short (served whole, with a matching
    Content-Length, but stopped mid-document by the application), or None.

    HTML5 lets a page leave out </body> and </html>, so their absence alone proves nothing.
    A page is cut short only when all three hold: it starts as a whole document (<!doctype
    html> or <html>), it has neither </body> nor </html>, and it ends inside a tag or inside
    an element whose end tag is never optional (a <div>, <ul>, <main>, <script>...). A
    valid page that leaves the optional end tags out still closes its <div>s; a sloppy page
    with an unclosed <div> still has its </html>. (A response shorter than its own
    Content-Length is Scrapy's data loss: the download fails and the page's errback says so.)
    """
    if not _DOCUMENT_START.match(body[:4096]) or _DOCUMENT_END.search(body):
        return None
    parser = _OpenElements()
    parser.feed(body)
    left = parser.rawdata.lstrip()
    if parser.open and parser.open[-1] in ("script", "style", "textarea"):
        return f"its HTML stops inside <{parser.open[-1]}>"
    if left.startswith("<"):
        return f"its HTML stops inside a tag ({left[:40]!r})"
    if parser.open:
        return f"its HTML stops inside <{parser.open[-1]}>"
    return None
