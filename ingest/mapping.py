"""Column mappings: which feed column fills which VehicleItem field."""

from __future__ import annotations

from typing import Any

from crawler.models import VehicleItem

# canonical field -> column names seen in real feeds (compared case-insensitively)
BUILTIN: dict[str, dict[str, list[str]]] = {
    "homenet": {
        "vin": ["VIN"], "stock_number": ["Stock", "StockNumber", "Stock #"],
        "condition": ["Type", "Condition", "New/Used"], "year": ["Year"], "make": ["Make"],
        "model": ["Model"], "trim": ["Trim"], "body_style": ["Body", "BodyStyle"],
        "exterior_color": ["ExteriorColor", "Ext Color"],
        "interior_color": ["InteriorColor", "Int Color"],
        "transmission": ["Transmission"], "drivetrain": ["Drivetrain", "DriveTrain"],
        "fuel_type": ["Fuel", "FuelType", "Fuel_Type"], "engine": ["Engine", "EngineDescription"],
        "mileage": ["Miles", "Mileage", "Odometer"], "price": ["SellingPrice", "Price",
                                                               "InternetPrice"],
        "msrp": ["MSRP"], "url": ["VehicleURL", "URL", "Link"],
        "image_urls": ["ImageList", "Images", "ImageURLs", "Photos"],
        "description": ["Description", "Comments", "SellerComments"],
        "availability": ["Status"],
    },
    "snapshot": {  # the JSON shape of the bundled daily snapshots and similar scrapers
        "vin": ["vin"], "stock_number": ["stock_number"], "year": ["year"], "make": ["make"],
        "model": ["model"], "trim": ["trim"], "drivetrain": ["drivetrain"],
        "exterior_color": ["exterior_color"], "interior_color": ["interior_color"],
        "price": ["total_price", "price"], "msrp": ["msrp"], "availability": ["status"],
        "url": ["detail_url", "url"], "condition": ["condition"], "mileage": ["mileage"],
    },
}


def _lookup(columns: list[str]) -> dict[str, str]:
    return {c.lower(): c for c in columns}


def detect(columns: list[str]) -> str:
    """The built-in mapping that covers the most of these columns."""
    lower = {c.lower() for c in columns}
    best, best_hits = "homenet", -1
    for name, mapping in BUILTIN.items():
        hits = sum(1 for names in mapping.values() if any(n.lower() in lower for n in names))
        if hits > best_hits:
            best, best_hits = name, hits
    return best


def resolve(mapping: dict[str, list[str] | str], columns: list[str]) -> dict[str, str]:
    """field -> the actual column name present in this feed."""
    present = _lookup(columns)
    out = {}
    for field, names in mapping.items():
        for n in [names] if isinstance(names, str) else names:
            if n.lower() in present:
                out[field] = present[n.lower()]
                break
    return out


def unknown_columns(resolved: dict[str, str], columns: list[str]) -> list[str]:
    used = set(resolved.values())
    return [c for c in columns if c not in used]


def to_item(row: dict[str, Any], resolved: dict[str, str], source: str) -> VehicleItem:
    fields = {field: row.get(column) for field, column in resolved.items()}
    if "condition" not in fields and str(row.get("status", "")).lower().startswith("in "):
        fields["condition"] = "new"
    return VehicleItem(source=source, raw=row, **fields)
