"""Property-based runs of the normalizers: any raw value gives the documented type, never an
exception; and a vehicle that validates fits the database's columns."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from crawler.models import Vehicle, VehicleItem
from pipelines import amounts, normalize, validate
from pipelines.text import text as text_of

SETTINGS = settings(max_examples=100, deadline=None)

scalars = (st.none() | st.booleans() | st.integers() | st.floats() | st.decimals() |
           st.text(max_size=40) |
           st.sampled_from(["$24,995.00*", "1.234,5", "20 000 km", "Call for price", "n/a",
                            "2021", "19xfc2f7xme104512", "12,345 mi", "1e400", "-5", "0",
                            "  ", "//cdn.example/a.jpg", "http://[::1", "https://x.test/a b",
                            "'; DROP TABLE vehicles; --", "=HYPERLINK(\"x\")", "\x00",
                            "99999999999999999999", "NaN", "Infinity", "4WD", "AWD",
                            "IRR", "VND", "2019 $25,000", "₫ 999.999.999.999",
                            "IRR 999,999,999,999.99", "€ 18,5 k", "€", "us$", "Euro",
                            "pounds", "XYZ", "ALL"]))
raw = st.recursive(scalars, lambda c: st.lists(c, max_size=3) |
                   st.dictionaries(st.sampled_from(["value", "unitCode", "name", "url",
                                                    "price", "amount", "@value"]), c,
                                   max_size=3), max_leaves=6)
FIELDS = ["vin", "stock_number", "condition", "year", "make", "model", "trim", "body_style",
          "exterior_color", "interior_color", "transmission", "drivetrain", "fuel_type",
          "engine", "mileage", "mileage_unit", "price", "msrp", "currency", "availability",
          "url", "image_urls", "description"]


@settings(max_examples=200, deadline=None)
@given(value=raw, unit=raw, currency=st.sampled_from(["USD", "EUR", "JPY", "KRW", "VND",
                                                      "IRR", "XYZ"]))
def test_each_normalizer_returns_its_documented_type(value, unit, currency):
    t = text_of(value)
    assert t is None or (isinstance(t, str) and t == t.strip() and "\n" not in t and t)
    v = normalize.vin(value)
    assert isinstance(v, str) and v == v.upper() and " " not in v
    n = amounts.number(value)
    assert n is None or (isinstance(n, Decimal) and n.is_finite())
    p, note = amounts.price(value)
    assert p is None or (Decimal(100) <= p <= Decimal(10_000_000) and p.as_tuple().exponent
                         == -2)
    assert note is None or isinstance(note, str)
    p, _ = amounts.price(value, currency)
    assert p is None or Decimal(100) <= p <= amounts.ceiling(currency)
    assert amounts.currency_in(value) in (None, *amounts.ISO_CODES)
    m = amounts.mileage(value, unit)
    assert m is None or (isinstance(m, int) and 0 <= m <= 2_000_000)
    y = normalize.year(value)
    assert y is None or (isinstance(y, int) and 1900 <= y <= 2100)
    for fn in (normalize.condition, normalize.make, normalize.drivetrain,
               normalize.transmission):
        out = fn(value)
        assert out is None or isinstance(out, str)
    urls = normalize.image_urls(value, "https://dealer.example/inventory/")
    assert isinstance(urls, list) and len(urls) == len(set(urls))
    assert all(isinstance(u, str) and u.startswith(("http://", "https://")) for u in urls)


@SETTINGS
@given(fields=st.fixed_dictionaries({}, optional={f: raw for f in FIELDS}),
       prices=st.none() | st.dictionaries(st.sampled_from(["msrp", "final", "sale", "Our Price"]),
                                          raw, max_size=3))
def test_any_item_normalizes_and_validates_without_raising(fields, prices):
    item = VehicleItem(source="https://dealer.example/inventory/x", prices=prices, **fields)
    vehicle = normalize.normalize(item)
    assert isinstance(vehicle, Vehicle)
    # built without validation (canonical_vehicle): exactly what validating would give
    validated = Vehicle.model_validate(vehicle.__dict__, strict=True)
    assert validated == vehicle and list(validated.__dict__) == list(vehicle.__dict__)
    why = validate.reasons(vehicle)
    assert all(isinstance(r, str) and r for r in why)
    validate.payload(item)  # the reject payload is JSON-safe whatever came in
    # an ISO 4217 code (the three English words ISO_CODES leaves out count where stated)
    assert vehicle.currency in amounts.ISO_CODES or vehicle.currency in ("ALL", "CUP", "TOP")
    if not why:
        # what validates fits the columns: smallint year, integer mileage, numeric(16,2)
        assert len(vehicle.vin) == 17
        assert vehicle.year is None or 1950 <= vehicle.year <= 2100
        assert vehicle.mileage is None or 0 <= vehicle.mileage <= 1_500_000
        for money in (vehicle.price, vehicle.msrp):
            assert money is None or abs(money) < Decimal("1e14")
        assert vehicle.condition in (None, "new", "used", "certified")
