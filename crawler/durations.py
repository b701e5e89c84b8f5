"""Durations as an operator types them on the command line: `90d`, `12h`, `30m`, `2w`."""

from __future__ import annotations

import re
from datetime import timedelta

from crawler.errors import InvalidInput

_UNITS = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1),
          "w": timedelta(weeks=1)}
_FORM = re.compile(r"([1-9][0-9]{0,6})([mhdw])")
LONGEST = timedelta(days=3650)  # past this, expiry is no expiry: say so (leave it off)


def parse_duration(text: str, option: str) -> timedelta:
    """A whole, positive number of minutes, hours, days or weeks, up to ten years; else
    InvalidInput naming `option` and the fix."""
    found = _FORM.fullmatch(text.strip().lower())
    hint = f"e.g. `{option} 90d`: a whole number then m, h, d or w (minutes, hours, days, weeks)"
    if found is None:
        raise InvalidInput(f"{option} {text!r} is not a duration", hint=hint)
    span = int(found.group(1)) * _UNITS[found.group(2)]
    if span > LONGEST:
        raise InvalidInput(f"{option} {text!r} is longer than ten years",
                           hint=hint + f"; leave {option} off for no expiry")
    return span
