"""Results-page URLs: which are later pages of a paged listing, and when a redirect of one is
only the site naming the same page its own way.

Many sites canonicalise their pager's URLs with a redirect: `/inventory?start=20` answers 301
to `/inventory?page=2`, `/used/page/2/` to `/used/?page=2`, `/inventory?page=2` to
`/inventory/?page=2`, or `?page=2` to `?page=2&sort=price`. Such a redirect is not the site
sending the crawl away from its results (to the home page, page 1, a consent wall), and must
not make every run incomplete. `renamed_later_page` says, from the two URLs alone, whether a
redirect can be such a renaming; the spider also asks the page for vehicles the pages before
it did not show (crawler/spider.py, `DealerSpider.note_page`).

The URL rule is narrow on purpose. Both URLs name a later page (page 2 or more, offset 1 or
more), of the same listing: the same host (with or without `www.`; the scheme may change),
the same path once a trailing `/page/N`, `/index.html` and the trailing slash are set aside,
and the same query parameters, in any order, once the pager's own are set aside, except
parameters that only order or track the results (`sort...`, `order...`, `dir`, `direction`,
`utm_...`), which may be added, changed or dropped. A filter or a page size that changes
(`make=`, `per_page=`) is another listing, or another slicing of it: not a renaming. Two page
numbers (or two offsets) must be equal; a page number and an offset cannot be compared (the
page size is the site's), so there the site's own redirect is trusted, and the vehicles
decide.

A page rendered in headless Chromium is judged by the same rule: the browser follows HTTP
redirects and the page's scripts' navigations (`location.replace`, a meta refresh) itself,
and the address its scripts write (`history.replaceState`) is the page's final URL too. Not
every other-looking final URL is a redirect: `same_url` first sets aside what a browser (or
Scrapy) writes differently for the same address, the fragment (`#results`), the query's
order, percent-encoding (`C 300`, `C%20300`; `O'Neil`, `O%27Neil`), the host's case and a
default port. Anything else (tracking parameters a script adds, a trailing slash) goes
through `renamed_later_page`, as an HTTP redirect's target does.
"""

from __future__ import annotations

import re
from typing import NamedTuple
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from w3lib.url import canonicalize_url

# the query parameters that number a results page, and those that give its first result
PAGE_PARAMS = ("page", "pg", "p", "pn", "pt", "pagenum", "page_no", "pageNumber")
OFFSET_PARAMS = ("start", "offset", "from", "skip")
# A later page of a paged listing: page=2, p=3, start=20, offset=40, /page/2/.
PAGER_URL = re.compile(rf"[?&](?:{'|'.join(PAGE_PARAMS)})=(?:[2-9]|\d{{2,}})"
                       rf"|[?&](?:{'|'.join(OFFSET_PARAMS)})=[1-9]"
                       r"|/page/(?:[2-9]|\d{2,})\b", re.I)
_PAGE_NAMES = frozenset(n.lower() for n in PAGE_PARAMS)
_OFFSET_NAMES = frozenset(n.lower() for n in OFFSET_PARAMS)
_PATH_PAGE = re.compile(r"/page/(\d+)/*$", re.I)
_INDEX = re.compile(r"/index\.(?:html?|php|aspx?)$", re.I)
# parameters that only order the results or track the visit: they may differ
_ORDERING = re.compile(r"(?:sort|order)\w*|dir|direction|utm_\w+", re.I)


class Place(NamedTuple):
    """Where a results URL points: which listing, and which page of it."""

    site: tuple[str, int | None]  # host without www., and a port other than the scheme's
    path: str  # without /page/N, /index.html and the trailing slash; lower case
    params: tuple[tuple[str, str], ...]  # the rest of the query, sorted, ordering left out
    kind: str  # "page", "offset", or "" (no pager in the URL)
    number: int


def place(url: str) -> Place | None:
    """The listing and page a URL names; None when it names its page twice (`?page=2&start=20`)
    or a page number is not a number."""
    parts = urlsplit(url)
    path, kinds = parts.path, []
    found = _PATH_PAGE.search(path)
    if found:
        kinds.append(("page", found.group(1)))
        path = path[:found.start()]
    path = _INDEX.sub("", path).rstrip("/").lower()
    params = []
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        low = name.lower()
        if low in _PAGE_NAMES or low in _OFFSET_NAMES:
            kinds.append(("page" if low in _PAGE_NAMES else "offset", value))
        elif not _ORDERING.fullmatch(name):
            params.append((low, value))
    if len(kinds) > 1 or (kinds and not kinds[0][1].isdigit()):
        return None
    kind, number = kinds[0] if kinds else ("", "0")
    host = (parts.hostname or "").lower()
    try:
        port = parts.port
    except ValueError:
        return None
    port = None if port in (None, 80, 443) else port
    return Place((host.removeprefix("www."), port), path, tuple(sorted(params)), kind,
                 int(number))


def is_later_page(where: Place | None) -> bool:
    """Page 2 or more, or an offset past the first result."""
    return where is not None and ((where.kind == "page" and where.number >= 2)
                                  or (where.kind == "offset" and where.number >= 1))


def renamed_later_page(asked: str, final: str) -> bool:
    """Whether `final`, where a redirect of the later results page `asked` ended, can be the
    same page under the site's own URL (see the module): a later page of the same listing,
    of the same number when both URLs number pages the same way."""
    a, f = place(asked), place(final)
    if not (is_later_page(a) and is_later_page(f)):
        return False
    if (a.site, a.path, a.params) != (f.site, f.path, f.params):
        return False
    return a.kind != f.kind or a.number == f.number


def same_numbered_page(asked: str, final: str) -> bool:
    """A renaming that keeps the page's number as it was (`?page=2` -> `/page/2/`, a
    trailing slash, `www.`): the same page, whatever its vehicles."""
    return renamed_later_page(asked, final) and place(asked).kind == place(final).kind



def same_url(asked: str, final: str) -> bool:
    """Whether `final` is `asked` written another way, no redirect at all (see the module):
    equal once the fragment is dropped and the query's order, percent-encoding, the host's
    case and a default port are normalised."""
    return _normalised(asked) == _normalised(final)


def _normalised(url: str) -> str:
    parts = urlsplit(canonicalize_url(url))
    try:
        port = parts.port
    except ValueError:
        return url
    host = parts.hostname or ""
    if ":" in host:  # IPv6
        host = f"[{host}]"
    if port is not None and port != {"http": 80, "https": 443}.get(parts.scheme):
        host += f":{port}"
    return urlunsplit((parts.scheme, host, parts.path or "/", parts.query, ""))
