"""Column mappings: which feed column fills which VehicleItem field.

A mapping is {field: [column names, best first]}. A name may be a path into nested records
(`mileage.value`, `image[*].url`), which also matches the flattened columns CSV exports use
(`mileage.value`, `image[0].url`, `image[1].url`, ...). Names compare case-insensitively.
`image_urls` collects every listed column that is present; other fields take the first.
An optional "defaults" entry gives values for fields a feed leaves empty (a default
currency where the row states none: its currency column is empty, '$' or no currency at
all, and its price names none: '€ 18.500' is EUR whatever the default).

A feed's columns pick the built-in mapping that explains most of them; a dealer's override
(`--mapping file.json|toml`, or dealerships.feed_mapping) replaces fields of it, or stands
alone with {"extends": "none"}. Columns no field uses are reported as unknown.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from crawler.errors import InvalidInput
from crawler.models import VehicleItem, raw_item
from pipelines.amounts import currency_in, stated_currency

Spec = dict[str, Any]

BUILTIN: dict[str, Spec] = {
    "meta": {  # Meta (Facebook) automotive catalog, XML or CSV/JSON with dotted columns
        "vin": ["vin"], "stock_number": ["vehicle_id", "stock_number"],
        "condition": ["state_of_vehicle", "condition"], "year": ["year"], "make": ["make"],
        "model": ["model"], "trim": ["trim"], "body_style": ["body_style"],
        "exterior_color": ["exterior_color"], "interior_color": ["interior_color"],
        "transmission": ["transmission"], "drivetrain": ["drivetrain"],
        "fuel_type": ["fuel_type"], "engine": ["engine"],
        "mileage": ["mileage.value", "mileage"], "mileage_unit": ["mileage.unit"],
        "price": ["sale_price", "price"], "msrp": ["msrp"], "availability": ["availability"],
        "currency": ["currency"], "url": ["url", "link"],
        "image_urls": ["image[*].url", "image_url"],
        "description": ["description"],
    },
    "google": {  # Google vehicle listings / vehicle ads feed (g: fields), XML or TSV/CSV
        "vin": ["vin"], "stock_number": ["id", "store_code_vehicle_id"],
        "condition": ["condition"], "year": ["year"],
        "certified": ["certified_pre_owned", "certified_pre-owned"],
        "make": ["brand", "make"], "model": ["model"], "trim": ["trim"],
        "body_style": ["body_style"], "exterior_color": ["color", "exterior_color"],
        "interior_color": ["interior_color"], "transmission": ["transmission"],
        "drivetrain": ["drivetrain"], "fuel_type": ["fuel_type", "fuel"],
        "engine": ["engine"], "mileage": ["mileage"], "price": ["sale_price", "price"],
        "msrp": ["vehicle_msrp", "msrp"], "availability": ["availability"],
        "currency": ["currency"],
        "url": ["link", "link_template"],
        "image_urls": ["image_link", "additional_image_link"],
        "description": ["description"],
    },
    "homenet": {  # HomeNet / vAuto / DealerSocket-style CSV exports
        "vin": ["VIN"], "stock_number": ["Stock", "StockNumber", "Stock #", "Stock_Number"],
        "condition": ["Type", "Condition", "New/Used", "NewUsed"], "year": ["Year"],
        "certified": ["Certified", "IsCertified", "CPO"],
        "make": ["Make"], "model": ["Model"], "trim": ["Trim", "Series"],
        "body_style": ["Body", "BodyStyle", "Body_Style"],
        "exterior_color": ["ExteriorColor", "Ext Color", "Exterior_Color", "Colour"],
        "interior_color": ["InteriorColor", "Int Color", "Interior_Color"],
        "transmission": ["Transmission"], "drivetrain": ["Drivetrain", "DriveTrain", "Drive"],
        "fuel_type": ["Fuel", "FuelType", "Fuel_Type"],
        "engine": ["Engine", "EngineDescription", "Engine_Description"],
        "mileage": ["Miles", "Mileage", "Odometer"],
        "price": ["SellingPrice", "InternetPrice", "Price", "Selling Price", "Internet_Price"],
        "msrp": ["MSRP"], "currency": ["Currency"],
        "url": ["VehicleURL", "URL", "Link", "VDP"],
        "image_urls": ["ImageList", "Images", "ImageURLs", "Photos", "PhotoURLs"],
        "description": ["Description", "Comments", "SellerComments"],
        "availability": ["Status"],
    },
    "snapshot": {  # daily inventory snapshots (the bundled real data) and similar scrapers
        "vin": ["vin"], "stock_number": ["stock_number"], "year": ["year"], "make": ["make"],
        "model": ["model"], "trim": ["trim"], "drivetrain": ["drivetrain"],
        "exterior_color": ["exterior_color"], "interior_color": ["interior_color"],
        "price": ["total_price", "price"], "msrp": ["msrp"], "availability": ["status"],
        "currency": ["currency"], "url": ["detail_url", "url"], "condition": ["condition"],
        "mileage": ["mileage"],
        "defaults": {"condition": "new"},
    },
}
FIELDS = [f for f in VehicleItem.model_fields if f not in ("source", "raw", "prices")]
COLLECT = {"image_urls"}


def load_override(path: str | Path) -> Spec:
    """A mapping file: JSON or TOML, {field: column or [columns]}, optional "extends" and
    "defaults"."""
    p = Path(path)
    if not p.is_file():
        raise InvalidInput(f"no mapping file {str(p)!r}", hint="give a .json or .toml file")
    try:
        data = tomllib.loads(p.read_text()) if p.suffix.lower() == ".toml" \
            else json.loads(p.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"mapping file {p.name} does not parse: {exc}",
                           hint="see README, Feed mappings") from exc
    return check(data)


def check(spec: Any) -> Spec:
    """Validate an override; returns it with every column list as a list."""
    if not isinstance(spec, dict):
        raise InvalidInput("a mapping must be an object of field: column(s)",
                           hint="see README, Feed mappings")
    spec = dict(spec.get("fields", spec)) | {k: spec[k] for k in ("extends", "defaults")
                                            if k in spec}
    extends = spec.get("extends")
    if extends is not None and extends != "none" and extends not in BUILTIN:
        raise InvalidInput(f"mapping extends unknown {extends!r}",
                           hint="one of " + ", ".join([*BUILTIN, "none"]))
    bad = [k for k in spec if k not in FIELDS and k not in ("extends", "defaults")]
    if bad:
        raise InvalidInput(f"mapping names unknown field(s) {', '.join(map(repr, bad))}",
                           hint="fields are " + ", ".join(FIELDS))
    out: Spec = {}
    for k, v in spec.items():
        if k == "defaults":
            out[k] = _check_defaults(v)
        elif k == "extends":
            out[k] = v
        elif isinstance(v, str):
            out[k] = [v]
        elif isinstance(v, list) and all(isinstance(x, str) for x in v):
            out[k] = v
        else:
            raise InvalidInput(f"mapping for {k!r} must be a column name or a list of them",
                               hint="see README, Feed mappings")
    return out


def _check_defaults(defaults: Any) -> dict[str, Any]:
    """A mapping's "defaults": a table of field = value, each value text or a number (a list
    of texts for image_urls), as a feed's own cell would be."""
    if not isinstance(defaults, dict):
        raise InvalidInput("mapping defaults must be a table of field = value",
                           hint='e.g. defaults = { condition = "new" } in TOML; see README, '
                                "Feed mappings")
    unknown = [k for k in defaults if k not in FIELDS]
    if unknown:
        raise InvalidInput(f"mapping defaults name unknown field(s) "
                           f"{', '.join(map(repr, unknown))}", hint="fields are "
                           + ", ".join(FIELDS))
    for field, value in defaults.items():
        scalar = isinstance(value, (str, int, float)) and not isinstance(value, bool)
        texts = isinstance(value, list) and all(isinstance(x, str) for x in value)
        if not (scalar or (texts and field in COLLECT)):
            raise InvalidInput(f"mapping default for {field!r} must be text or a number"
                               + (" (or a list of texts)" if field in COLLECT else "")
                               + f", not {type(value).__name__}",
                               hint="see README, Feed mappings")
    if "currency" in defaults and not stated_currency(defaults["currency"]):
        raise InvalidInput(f"mapping default currency {defaults['currency']!r} names no one "
                           "currency", hint='give its ISO 4217 code, e.g. currency = "EUR"')
    return dict(defaults)


def summary(spec: Spec, most: int = 8) -> str:
    """A stored override in one line: what it builds on, then field <- column(s) for its
    first `most` fields, then the fields it has defaults for."""
    spec = check(spec)
    extends = spec.get("extends")
    base = ("alone (extends none)" if extends == "none"
            else f"over built-in {extends}" if extends else "over the detected built-in")
    fields = [f"{k} <- {' | '.join(spec[k])}" for k in FIELDS if k in spec]  # in a set order:
    # a mapping comes back from a jsonb column with its keys in jsonb's order
    more = f"; and {len(fields) - most} more" if len(fields) > most else ""
    text = f"{base}: " + ("; ".join(fields[:most]) or "no fields") + more
    if spec.get("defaults"):
        text += "; defaults for " + ", ".join(sorted(spec["defaults"]))
    return text


def _names(spec: Spec, field: str) -> list[str]:
    v = spec.get(field, [])
    return [v] if isinstance(v, str) else list(v)


# -- resolving names against a feed's columns --------------------------------------------------

Getter = Callable[[dict], Any]
_SEGMENT = re.compile(r"([^.\[\]]+)|\[(\d+|\*)\]")


def _key(d: dict, part: str) -> Any:
    if part in d:
        return d[part]
    low = part.lower()
    return next((v for k, v in d.items() if k.lower() == low), None)


def _path_getter(parts: list[str | int]) -> Getter:
    many = "*" in parts

    def get(row: dict) -> Any:
        values: list[Any] = [row]
        for part in parts:
            nxt: list[Any] = []
            for x in values:
                if part == "*":
                    nxt.extend(x if isinstance(x, list) else [x])
                elif isinstance(part, int):
                    if isinstance(x, list):
                        nxt.extend(x[part:part + 1])
                    elif part == 0:
                        nxt.append(x)
                else:  # a name; inside a list, look in each element
                    for y in x if isinstance(x, list) else [x]:
                        if isinstance(y, dict):
                            nxt.append(_key(y, part))
            values = [v for v in nxt if v not in (None, "")]
            if not values:
                return None
        return values if many else values[0]
    return get


def _flat_pattern(name: str) -> re.Pattern | None:
    if "[*]" not in name:
        return None
    return re.compile("^" + re.escape(name.lower()).replace(r"\[\*\]", r"\[(\d+)\]") + "$")


def column_getter(name: str, columns: list[str]) -> tuple[Getter | None, list[str]]:
    """How to read `name` from rows with these columns, and which columns that uses."""
    lower: dict[str, str] = {}
    for c in columns:  # of names differing only in case (JSON keys), the first
        lower.setdefault(c.lower(), c)
    if name.lower() in lower:
        col = lower[name.lower()]
        return (lambda row: row.get(col)), [col]
    pattern = _flat_pattern(name)
    if pattern is not None:  # image[*].url against image[0].url, image[1].url, ...
        hits = sorted(((int(m.group(1)), c) for c in columns
                       if (m := pattern.match(c.lower()))), key=lambda t: t[0])
        if hits:
            cols = [c for _, c in hits]
            return (lambda row: [row.get(c) for c in cols if row.get(c)]), cols
    parts: list[str | int] = [a if a else (b if b == "*" else int(b))
                              for a, b in _SEGMENT.findall(name)]
    if len(parts) > 1 and isinstance(parts[0], str) and parts[0].lower() in lower:
        head = lower[parts[0].lower()]
        return _path_getter([head, *parts[1:]]), [head]
    return None, []


class Plan:
    """A mapping resolved against one set of columns: field -> getter, and what is unused."""

    def __init__(self, spec: Spec, columns: list[str]):
        self.getters: dict[str, Getter] = {}
        used: set[str] = set()
        for field in FIELDS:
            found = []
            for name in _names(spec, field):
                getter, cols = column_getter(name, columns)
                if getter is not None:
                    found.append(getter)
                    used.update(cols)
            if len(found) == 1:
                self.getters[field] = found[0]
            elif found:
                self.getters[field] = (_collect if field in COLLECT else _first)(found)
        self.defaults: dict[str, Any] = dict(spec.get("defaults") or {})
        self.unknown = [c for c in columns if c not in used]

    def item(self, row: dict, source: str, **extra: Any) -> VehicleItem:
        fields = {f: g(row) for f, g in self.getters.items()}
        for f, v in self.defaults.items():
            if f == "currency":
                if not _states_currency(fields):
                    fields[f] = v
            elif fields.get(f) in (None, ""):
                fields[f] = v
        return raw_item(source, fields, row, **extra)  # every field is Any: no validation


def _states_currency(fields: dict) -> bool:
    """Whether a row states its currency: in its currency column (a code, '€', 'euros';
    not '$', which names several, nor what names none) or in its price (or MSRP) text
    ('€ 18.500'). Either beats a default currency (normalize reads them)."""
    return bool(stated_currency(fields.get("currency")) or currency_in(fields.get("price"))
                or currency_in(fields.get("msrp")))


def _collect(getters: list[Getter]) -> Getter:
    """Every listed column's values, joined as one '|'-separated string when they are all
    text (so 'a.jpg,b.jpg' in one column splits like a single list column does)."""
    def get(row: dict) -> Any:
        out: list = []
        for g in getters:
            v = g(row)
            if v in (None, ""):
                continue
            out.extend(v if isinstance(v, list) else [v])
        return "|".join(out) if all(isinstance(x, str) for x in out) else out
    return get


def _first(getters: list[Getter]) -> Getter:
    def get(row: dict) -> Any:
        for g in getters:
            v = g(row)
            if v not in (None, ""):
                return v
        return None
    return get


def fields_matched(spec: Spec, columns: list[str]) -> int:
    return sum(1 for field in FIELDS
               if any(column_getter(n, columns)[0] is not None for n in _names(spec, field)))


def detect(columns: list[str]) -> str:
    """The built-in mapping that fills the most fields from these columns."""
    best, best_hits = "homenet", 0
    for name, spec in BUILTIN.items():
        hits = fields_matched(spec, columns)
        if hits > best_hits:
            best, best_hits = name, hits
    return best


def choose(columns: list[str], override: Spec | None = None) -> tuple[str, Spec]:
    """(name, spec) for a feed: the detected built-in, with the override's fields on top."""
    if override:
        override = check(override)
        extends = override.get("extends")
        if extends == "none":
            return "custom", override
        name = extends or detect(columns)
        base = BUILTIN[name]
        merged = {**base, **{k: v for k, v in override.items() if k != "extends"}}
        merged["defaults"] = {**base.get("defaults", {}), **override.get("defaults", {})}
        return f"{name}+override", merged
    name = detect(columns)
    return name, BUILTIN[name]


# kept for callers of the first version
def resolve(mapping: Spec, columns: list[str]) -> Plan:
    return Plan(mapping, columns)
