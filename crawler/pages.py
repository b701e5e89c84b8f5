"""Classify a fetched page: inventory, empty inventory, not found, or blocked.

A run that meets blocked or not-found listing pages must say so and must never be read as
"the dealer sold everything".
"""

from __future__ import annotations

import re

INVENTORY = "inventory"
EMPTY = "empty"
NOT_FOUND = "not_found"
BLOCKED = "blocked"
OTHER = "other"

_BLOCK_SIGNS = re.compile(
    r"captcha-delivery\.com|datadome|cf-challenge|challenge-platform|cf_chl_|"
    r"attention required!? \| cloudflare|just a moment\.\.\.|px-captcha|perimeterx|"
    r"distil_r_captcha|are you a robot|verify you are (a )?human|access denied|"
    r"request unsuccessful\. incapsula|_incapsula_resource",
    re.I,
)
_NOT_FOUND_SIGNS = re.compile(
    r"<title>[^<]*(page not found|404|not found|no longer available|page cannot be found)",
    re.I,
)
_EMPTY_SIGNS = re.compile(
    r"no (vehicles|results|matches|inventory) (were )?(found|available|match)|"
    r"0 (vehicles|results) (found|match)|we couldn.t find any (vehicles|matches)",
    re.I,
)


def classify(status: int, body: str, vehicles_found: int) -> str:
    """What kind of page this is, from its status, its text and how many vehicles it held."""
    head = body[:200_000]
    if status in (401, 403, 429) or (status in (200, 503) and _BLOCK_SIGNS.search(head)
                                     and vehicles_found == 0):
        return BLOCKED
    if status in (404, 410) or (vehicles_found == 0 and _NOT_FOUND_SIGNS.search(head)):
        return NOT_FOUND
    if vehicles_found:
        return INVENTORY
    if _EMPTY_SIGNS.search(head):
        return EMPTY
    return OTHER
