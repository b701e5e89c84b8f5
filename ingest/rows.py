"""What the feed readers yield, and what they share: each reader yields `Row`s, (row number,
row), and holds one row at a time.

A row is a dict of the source's own fields, or `Unreadable` (why, the raw text when there is
some) for a row that could not be read: bad CSV quoting, a JSON record that does not parse.
Unreadable rows become rejects and the run goes on; `Unreadable.fatal` means reading could
not continue (a truncated file), so the run is incomplete and removes nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Unreadable:
    reason: str
    raw: str | None = None
    fatal: bool = False
    # the one VIN its text names, if any (see listed_vin)
    vin: str | None = None


# 17 letters and digits, both, standing alone: a VIN (or a placeholder one) as text holds it
_VIN_TOKEN = re.compile(r"(?<![A-Za-z0-9])(?=[A-Za-z]*[0-9])(?=[0-9]*[A-Za-z])"
                        r"[A-Za-z0-9]{17}(?![A-Za-z0-9])")


def listed_vin(text: str | None) -> str | None:
    """The VIN a row that cannot be read names, when its text names exactly one (in its VIN
    column and, say, its page URL): that car is still on the dealer's list, so the run
    counts it as seen instead of removing it. None when it names none, or several (a bad
    quote that swallowed the next rows)."""
    if not text:
        return None
    found = {m.group().upper() for m in _VIN_TOKEN.finditer(text)}
    return found.pop() if len(found) == 1 else None


Row = tuple[int, "dict | Unreadable | None"]  # None: see csv_reader.read_csv's `unchanged`

# ends the reason of the row a file was cut short in (it ends without a line break)
CUT = ", and the file ends there without a line break: it looks cut short"
