"""An offline VIN decoder over NHTSA vPIC data (the subset the `vin` package ships as sqlite).

vPIC describes each manufacturer code (WMI) by patterns over the VIN's descriptor: positions
4-8 and 10-17 written as `VDS|VIS`, each pattern valid for a span of model years and naming
some of make, model, series, trim and body class. A VIN decodes to the merge of every
pattern that matches it, most recent and most specific first (the `vin` package's order).

Unlike `vin.VIN`, which runs one SQL query with a Python REGEXP callback per VIN (about a
millisecond), this module loads a WMI's patterns once, compiles them, and caches each decode
per VIN *pattern*: the WMI plus as many descriptor characters as that WMI's longest pattern
reads (usually the squish VIN: positions 1-8 and 10). Serial numbers never reach the key, so
a dealer's inventory of one model decodes with a dictionary lookup per VIN.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib.resources import files
from typing import Any

FIELDS = ("make", "model", "series", "trim", "body_class", "vehicle_type", "manufacturer",
          "country", "electrification_level")
_TOKEN = re.compile(r"\[[^\]]*\]|\\.|.")
_LOCK = threading.Lock()

_PATTERNS_SQL = """
select vds, from_year, to_year, make_id, model_id, series_id, trim_id, body_class_id,
       electrification_level_id
  from pattern where wmi = ?
 order by from_year desc, coalesce(updated, created) desc, id asc
"""
_NAME_TABLES = ("make", "model", "series", "trim", "body_class", "electrification_level")

_WMI_SQL = """
select wmi.code, make.name as make, manufacturer.name as manufacturer,
       country.name as country, vehicle_type.name as vehicle_type,
       wmi.vehicle_type_id, wmi.truck_type_id
  from wmi
  join manufacturer on manufacturer.id = wmi.manufacturer_id
  join vehicle_type on vehicle_type.id = wmi.vehicle_type_id
  left join make on make.id = wmi.make_id
  left join country on country.alpha_2_code = wmi.country
 where wmi.code = ?
"""


@dataclass(frozen=True)
class Pattern:
    vds: str
    from_year: int
    to_year: int
    values: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Wmi:
    """What vPIC knows about one manufacturer code, and its patterns."""

    code: str
    make: str | None  # the one make this WMI builds, or None when it builds several
    manufacturer: str
    country: str | None
    vehicle_type: str
    light_vehicle: bool  # car, MPV or light truck: the 30-year cycle rule of position 7
    patterns: tuple[Pattern, ...]
    key_length: int  # descriptor characters any pattern of this WMI reads
    last_year: int  # the latest model year a pattern starts in (0: none)
    pattern_makes: frozenset[str]


@lru_cache(maxsize=1)
def _connection() -> sqlite3.Connection:
    uri = files("vin").joinpath("vehicle.db").as_uri() + "?immutable=1"
    conn = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None)
    conn.row_factory = sqlite3.Row
    return conn


def version() -> dict[str, Any]:
    with _LOCK:
        row = _connection().execute("select * from vpic_version").fetchone()
    return dict(row) if row else {}


def wmi_code(vin: str) -> str:
    """Three characters, or six for small makers (position 3 is 9: positions 1-3 and 12-14)."""
    return vin[:3] + vin[11:14] if vin[2] == "9" else vin[:3]


def descriptor(vin: str) -> str:
    return f"{vin[3:8]}|{vin[9:]}"


@lru_cache(maxsize=1)
def _names() -> dict[str, dict[int, str]]:
    """The small name tables, and each model's make, loaded once (joins in sqlite are slow)."""
    conn = _connection()
    names = {t: dict(conn.execute(f"select id, name from {t}").fetchall())  # noqa: S608
             for t in _NAME_TABLES}
    names["model_make"] = dict(conn.execute("select model_id, make_id from make_model"))
    return names


@lru_cache(maxsize=1)
def _make_names() -> frozenset[str]:
    return frozenset(name.lower() for name in _names()["make"].values())


def is_make(name: str) -> bool:
    """Whether vPIC lists this name (any case) as a make."""
    with _LOCK:
        return name.lower() in _make_names()


@lru_cache(maxsize=4096)
def wmi(code: str) -> Wmi | None:
    """Load a WMI once: its facts and every pattern, compiled. None if vPIC does not know it."""
    with _LOCK:
        conn = _connection()
        head = conn.execute(_WMI_SQL, (code,)).fetchone()
        rows = conn.execute(_PATTERNS_SQL, (code,)).fetchall() if head else []
        names = _names()
    if head is None:
        return None
    patterns = []
    key_length = 7  # always through the model-year character
    makes = set()
    for r in rows:
        make_id = names["model_make"].get(r["model_id"]) or r["make_id"]
        found = {"make": names["make"].get(make_id)}
        for table in _NAME_TABLES[1:]:
            found[table] = names[table].get(r[f"{table}_id"])
        values = tuple((f, v) for f, v in found.items() if v)
        if found["make"]:
            makes.add(found["make"])
        key_length = max(key_length, _positions(r["vds"]))
        patterns.append(Pattern(r["vds"], r["from_year"], r["to_year"], values))
    light = head["vehicle_type_id"] in (2, 7) or (
        head["vehicle_type_id"] == 3 and head["truck_type_id"] in (None, 1))
    return Wmi(code=code, make=head["make"], manufacturer=head["manufacturer"],
               country=head["country"], vehicle_type=head["vehicle_type"],
               light_vehicle=light, patterns=tuple(patterns), key_length=key_length,
               last_year=max((p.from_year for p in patterns), default=0),
               pattern_makes=frozenset(makes))


@cache
def _compile(vds: str) -> re.Pattern[str]:
    return re.compile(vds)


@cache
def _positions(vds: str) -> int:
    """How many descriptor characters a pattern reads ('.R[67]' reads three)."""
    return len(_TOKEN.findall(vds))


def cache_key(vin: str) -> str | None:
    """The part of a VIN its vPIC decode depends on (None when the WMI is unknown)."""
    info = wmi(wmi_code(vin))
    if info is None:
        return None
    return info.code + descriptor(vin)[:info.key_length]


_VIN_ALPHABET = "0123456789ABCDEFGHJKLMNPRSTUVWXYZ"


@cache
def _admits(token: str) -> frozenset[str] | None:
    """The VIN characters one pattern token admits; None for any (or a token not understood,
    which then narrows nothing)."""
    if len(token) == 1 and token.isalnum():
        return frozenset(token)
    if token.startswith("[") and token.endswith("]"):
        chars = frozenset(c for c in _VIN_ALPHABET if re.fullmatch(token, c))
        return None if len(chars) == len(_VIN_ALPHABET) else chars
    return None


@lru_cache(maxsize=4096)
def _index(code: str) -> tuple[dict[tuple[int, str], list[int]], list[int]]:
    """A known WMI's patterns indexed for `match`: each pattern's position in its
    `patterns`, under the characters its most selective position (of the five VDS
    positions) admits, or in the free list when no position narrows it. A large maker has
    thousands of patterns; a descriptor then meets the few hundred that can match it."""
    patterns = wmi(code).patterns  # type: ignore[union-attr]
    buckets: dict[tuple[int, str], list[int]] = {}
    free: list[int] = []
    for i, p in enumerate(patterns):
        tokens = _TOKEN.findall(p.vds)
        if any(t in "*+?{}()|^$\\" for t in tokens):  # not a plain positional pattern
            free.append(i)
            continue
        best: tuple[int, frozenset[str]] | None = None
        for pos, token in enumerate(tokens[:5]):
            chars = _admits(token)
            if chars is not None and (best is None or len(chars) < len(best[1])):
                best = (pos, chars)
        if best is None:
            free.append(i)
            continue
        for c in best[1]:
            buckets.setdefault((best[0], c), []).append(i)
    return buckets, free


def match(info: Wmi, desc: str, year: int | None) -> dict[str, str]:
    """Merge every pattern matching the descriptor in that model year, best first."""
    out: dict[str, str] = {}
    buckets, free = _index(info.code)
    candidates = list(free)
    for pos, c in enumerate(desc[:5]):
        candidates.extend(buckets.get((pos, c), ()))
    candidates.sort()  # the patterns' own order: best first
    for p in map(info.patterns.__getitem__, candidates):
        if year is not None and not p.from_year <= year <= p.to_year:
            continue
        if _compile(p.vds).match(desc):
            merge(out, p)
            if len(out) == 6:
                break
    return out


def merge(out: dict[str, str], p: Pattern) -> None:
    """Add what one matching pattern names to what better patterns named before it.

    The first pattern to name a model also names the make: its make is the model's, while a
    broader pattern (a body class over several brands' VINs) may carry the WMI's usual one
    (5N1AL0MM8DC306971: 'AL.M' says Nissan, 'AL0' says Infiniti JX35)."""
    names_model = "model" not in out and any(k == "model" for k, _ in p.values)
    for k, v in p.values:
        if names_model and k == "make":
            out[k] = v
        else:
            out.setdefault(k, v)


def has_patterns(info: Wmi, year: int) -> bool:
    return any(p.from_year <= year <= p.to_year for p in info.patterns)


@lru_cache(maxsize=200_000)
def decode_key(key: str, years: tuple[int, ...]) -> dict[str, Any] | None:
    """Decode one VIN pattern (see cache_key) for candidate model years, likeliest first.

    The first year with a matching pattern wins; if none matches, the WMI's own facts
    (its one make, manufacturer, country, vehicle type) are still returned, with the first
    candidate year. None when vPIC does not know the WMI.
    """
    code_len = 6 if len(key) > 2 and key[2] == "9" else 3
    info = wmi(key[:code_len])
    if info is None:
        return None
    desc = key[code_len:]
    found: dict[str, str] = {}
    model_year = years[0] if years else None
    extrapolated = False
    for year in years:
        found = match(info, desc, year)
        if found:
            model_year = year
            break
    if not found and years:
        # No pattern for this year yet (a model newer than the data): the latest patterns
        # still tell make and often model, but the year stays the VIN's own. Not a match
        # for this year: the model is told, not checked against what a source states.
        latest = match(info, desc, None)
        extrapolated = True
        found = {k: v for k, v in latest.items() if k in ("make", "model")}
    make = found.get("make") or info.make or (
        next(iter(info.pattern_makes)) if len(info.pattern_makes) == 1 else None)
    return {
        "make": make, "model": found.get("model"), "series": found.get("series"),
        "trim": found.get("trim"), "body_class": found.get("body_class"),
        "electrification_level": found.get("electrification_level"),
        "manufacturer": info.manufacturer, "country": info.country,
        "vehicle_type": info.vehicle_type, "model_year": model_year,
        "matched": not extrapolated and bool(found.get("model") or found.get("body_class")),
    }


def clear_cache() -> None:
    """Forget decoded patterns and loaded WMIs (benchmarks measure cold decoding)."""
    for cached in (decode_key, wmi, _index, _admits, _compile, _positions, _names,
                   _make_names):
        cached.cache_clear()
