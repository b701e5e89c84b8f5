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
"""

from __future__ import annotations

import re

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
