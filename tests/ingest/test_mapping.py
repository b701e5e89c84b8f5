"""Column mappings: detection, every built-in style, overrides and unknown columns."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from crawler.config import PROJECT_ROOT
from crawler.errors import InvalidInput
from ingest import mapping, readers
from pipelines.normalize import normalize

FEEDS = PROJECT_ROOT / "fixtures" / "feeds"


def vehicles(name: str, override: dict | None = None):
    """(mapping name, [(vehicle, unknown columns)]) for a fixture feed."""
    rows = [r for _, r in readers.read(FEEDS / name) if isinstance(r, dict)]
    columns = list(dict.fromkeys(k for r in rows for k in r))
    chosen, spec = mapping.choose(columns, override)
    out = []
    for n, row in enumerate(rows, 1):
        plan = mapping.Plan(spec, list(row))
        out.append((normalize(plan.item(row, f"row {n}")), plan.unknown))
    return chosen, out


@pytest.mark.parametrize("columns, expected", [
    (["Stock", "VIN", "Year", "Make", "Model", "Miles", "SellingPrice", "ImageList"], "homenet"),
    (["id", "vin", "brand", "model", "year", "mileage", "price", "image_link",
      "additional_image_link", "condition"], "google"),
    (["vehicle_id", "vin", "make", "model", "year", "mileage.value", "mileage.unit",
      "image[0].url", "state_of_vehicle", "price"], "meta"),
    (["vin", "year", "trim", "total_price", "msrp", "status", "detail_url", "dealer_name",
      "exterior_color", "stock_number"], "snapshot"),
])
def test_detection_picks_the_mapping_that_fits(columns, expected):
    assert mapping.detect(columns) == expected


def test_homenet_csv():
    name, got = vehicles("harbor-city-auto.csv")
    assert name == "homenet"
    camry = got[0][0]
    assert (camry.vin, camry.stock_number, camry.make, camry.mileage, camry.price) == \
        ("4T1G11AK9LU401122", "HC1001", "Toyota", 34210, Decimal("22995.00"))
    assert len(camry.image_urls) == 3 and camry.exterior_color == "Celestial Silver"
    assert got[0][1] == []


def test_google_xml_prices_with_currency_mileage_with_units_and_all_images():
    name, got = vehicles("google-vehicle-listings.xml")
    assert name == "google"
    civic, rav4, f150 = (v for v, _ in got)
    assert (civic.price, civic.currency, civic.mileage, civic.make) == \
        (Decimal("24995.00"), "USD", 12000, "Honda")
    assert civic.image_urls == ["https://lakeside.example/img/civic-1.jpg",
                                "https://lakeside.example/img/civic-2.jpg",
                                "https://lakeside.example/img/civic-3.jpg"]
    assert civic.condition == "used" and civic.url.endswith("/19XFC2F7XME104512")
    assert rav4.price == Decimal("33450.00") and rav4.condition == "new"
    assert f150.currency == "CAD" and f150.mileage == 12427  # 20000 km
    assert got[0][1] == ["vehicle_fulfillment"]  # reported, not silently dropped


def test_google_tsv_with_comma_joined_additional_images():
    name, got = vehicles("google-vehicle-ads.tsv")
    assert name == "google"
    outback = got[0][0]
    assert len(outback.image_urls) == 3 and outback.mileage == 41000
    assert got[0][1] == ["store_code"]


@pytest.mark.parametrize("feed", ["meta-automotive-catalog.xml", "meta-automotive-catalog.csv"])
def test_meta_catalog_nested_xml_and_flattened_csv_agree(feed):
    name, got = vehicles(feed)
    assert name == "meta"
    equinox, jetta = (v for v, _ in got)
    assert (equinox.vin, equinox.stock_number, equinox.condition, equinox.mileage) == \
        ("3GNAXKEG2RS112233", "RM-1", "new", 12)
    assert equinox.image_urls == ["https://riverside.example/i/rm1-a.jpg",
                                  "https://riverside.example/i/rm1-b.jpg"]
    assert jetta.condition == "certified" and jetta.mileage == 31069  # 50000 km
    assert equinox.price == Decimal("31200.00")


def test_snapshot_json_lines():
    name, got = vehicles("aggregator.jsonl")
    assert name == "snapshot"
    benz = got[0][0]
    assert benz.price == Decimal("38900.00") and benz.msrp == Decimal("45100.00")
    assert benz.availability == "In Stock" and benz.condition == "used"
    assert got[1][0].condition == "new"  # the snapshot mapping's default


def test_override_file_stands_alone():
    override = mapping.load_override(FEEDS / "dealer-custom.mapping.toml")
    name, got = vehicles("dealer-custom.csv", override)
    assert name == "custom"
    civic = got[0][0]
    assert civic.price == Decimal("24995.00") and civic.mileage == 12000  # 19.312 km
    assert civic.image_urls == ["https://custom.example/a.jpg", "https://custom.example/b.jpg"]
    assert got[0][1] == ["Lot Location"]


def test_override_extends_a_builtin(tmp_path):
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"price": ["Our Price"], "defaults": {"currency": "CAD"}}))
    override = mapping.load_override(path)
    name, spec = mapping.choose(["VIN", "Year", "Make", "Model", "Our Price", "SellingPrice"],
                                override)
    assert name == "homenet+override"
    plan = mapping.Plan(spec, ["VIN", "Year", "Make", "Model", "Our Price", "SellingPrice"])
    item = plan.item({"VIN": "X", "Year": "2020", "Make": "Kia", "Model": "Soul",
                      "Our Price": "$9,000", "SellingPrice": "$9,999"}, "row 1")
    assert item.price == "$9,000" and item.currency == "CAD" and item.make == "Kia"
    assert plan.unknown == ["SellingPrice"]


@pytest.mark.parametrize("content, message", [
    ('{"colour": "Paint"}', "unknown field"),
    ('{"vin": 7}', "column name or a list"),
    ('{"extends": "nope"}', "extends unknown"),
    ("not json", "does not parse"),
    # defaults were never checked: a dealer could store one, and every run of its feed
    # then failed on a TypeError, retried until it was a dead letter
    ('{"defaults": 5}', "defaults must be a table"),
    ('{"defaults": {"colour": "red"}}', "defaults name unknown field"),
    ('{"defaults": {"condition": {"a": 1}}}', "default for 'condition' must be"),
    # a default currency naming no one currency was flagged currency_unknown on every row
    ('{"defaults": {"currency": "Bitcoin"}}', "default currency 'Bitcoin' names no one"),
    ('{"defaults": {"currency": "$"}}', "default currency '\\$' names no one"),
])
def test_bad_override_files_are_one_clear_error(tmp_path, content, message):
    path = tmp_path / "m.json"
    path.write_text(content)
    with pytest.raises(InvalidInput, match=message):
        mapping.load_override(path)


def test_a_default_currency_may_be_given_as_a_symbol_or_in_lower_case(tmp_path):
    path = tmp_path / "m.json"
    for given in ("eur", "€", "EUR"):
        path.write_text(f'{{"defaults": {{"currency": "{given}"}}}}')
        assert mapping.load_override(path)["defaults"] == {"currency": given}


def test_missing_override_file():
    with pytest.raises(InvalidInput, match="no mapping file"):
        mapping.load_override("/no/such/mapping.toml")


def test_of_names_differing_only_in_case_the_first_column_is_read():
    get, used = mapping.column_getter("price", ["Price", "price"])
    assert used == ["Price"] and get({"Price": "1", "price": ""}) == "1"


def test_summary_names_the_base_then_fields_in_a_set_order_then_defaults():
    spec = {"price": ["Our Price", "Price"], "vin": "Vehicle ID",
            "defaults": {"condition": "used"}}
    assert mapping.summary(spec) == ("over the detected built-in: vin <- Vehicle ID; "
                                     "price <- Our Price | Price; defaults for condition")
    many = {"extends": "google", **{f: f.upper() for f in mapping.FIELDS[:10]}}
    text = mapping.summary(many, most=3)
    assert text.startswith("over built-in google: vin <- VIN; ") and text.endswith("and 7 more")
    assert mapping.summary({"extends": "none"}) == "alone (extends none): no fields"


def test_google_listing_codes_certified_pre_owned_and_vehicle_msrp():
    # Google's vehicle listings spec: condition 'n'/'u' as well as new/used, a separate
    # yes/no (1/0) certified_pre_owned, and the MSRP as vehicle_msrp
    name, got = vehicles("google-vehicle-listings.tsv")
    assert name == "google"
    civic, rav4, jetta, f150 = (v for v, _ in got)
    assert civic.condition == "certified"  # u + certified_pre_owned 1
    assert (rav4.condition, rav4.msrp, rav4.price) == ("new", Decimal("33450.00"),
                                                      Decimal("32900.00"))
    assert jetta.condition == "used"  # certified_pre_owned 'no'
    assert f150.condition == "certified"  # no condition given; certified means used
    assert sorted(got[0][1]) == ["dealership_name", "store_code"]  # reported, not dropped


@pytest.mark.parametrize("certified, condition, expected", [
    ("yes", "used", "certified"), ("TRUE", "Used", "certified"), ("Y", None, "certified"),
    ("no", "used", "used"), ("0", None, None), (None, "u", "used"),
    ("yes", "new", "new"),  # a certified flag on a new car is the feed's slip
])
def test_a_certified_column_beside_the_condition(certified, condition, expected):
    spec = mapping.BUILTIN["google"]
    row = {"vin": "19XFC2F7XME104512", "condition": condition,
           "certified_pre-owned": certified}  # the vehicle ads spelling
    assert normalize(mapping.Plan(spec, list(row)).item(row, "row 1")).condition == expected


@pytest.mark.parametrize("price, currency", [
    ("24995 USD", "USD"), ("1.234.000 SEK", "SEK"), ("$25,000", "USD"),
    ("1,2 MIO", "USD"), ("2.5 MLN", "USD"), ("25000 OBO", "USD"), ("25K ONO", "USD"),
    ("Call TBD", "USD"), ("25,000 NEG", "USD"),
])
def test_a_word_after_a_price_is_no_currency(price, currency):
    """A price's trailing three capitals name its currency ('24995 USD', as Google's feeds
    write it), but a magnitude or a seller's note ('1,2 MIO', '25000 OBO') was stored as
    the currency (the column holds three letters: 'MIO')."""
    columns = ["VIN", "Make", "Model", "Price"]
    _, spec = mapping.choose(columns)
    item = mapping.Plan(spec, columns).item(
        {"VIN": "1HGCM82633A004352", "Make": "Honda", "Model": "Accord", "Price": price},
        "row 1")
    assert normalize(item).currency == currency


@pytest.mark.parametrize("row, currency", [
    ({"Price": "€ 18.500"}, "EUR"), ({"Price": "18.500 €", "Currency": ""}, "EUR"),
    ({"Price": "$18,500"}, "CAD"), ({"Price": "18500"}, "CAD"),
    ({"Price": "£12,995", "Currency": "EUR"}, "EUR"),
    ({"Price": "12 500 kr", "Currency": None}, "CAD"),
    # a currency column holding no one currency states none: the default fills it
    ({"Price": "18500", "Currency": "$"}, "CAD"), ({"Price": "18500", "Currency": "??"}, "CAD"),
    ({"Price": "€ 18.500", "Currency": "??"}, "EUR"),
    ({"Price": "18500", "Currency": "euros"}, "EUR"),
    ({"Price": "$18,500", "Currency": "£"}, "GBP"),
])
def test_a_currency_the_price_names_wins_over_the_mappings_default(row, currency):
    """A dealer's default currency is for rows that say none: a row priced '€ 18.500'
    took the default instead. A currency column's value wins over both; '$' and 'kr'
    name no one currency, so the default stays, as it does for a currency column holding
    '$' or no currency ('??' was stored as the currency)."""
    columns = ["VIN", "Price", "Currency"]
    _, spec = mapping.choose(columns, {"defaults": {"currency": "CAD"}})
    row = {"VIN": "1HGCM82633A004352", **row}
    assert normalize(mapping.Plan(spec, columns).item(row, "row 1")).currency == currency


@pytest.mark.parametrize("price, currency", [("$32,995 CAD", "CAD"), ("$29,990 AUD", "AUD")])
def test_a_dollar_price_with_its_code_keeps_that_code_over_the_default(price, currency):
    """A feed's '$32,995 CAD' took its trailing code as its currency; then it took the
    mapping's default (or USD) instead, since '$' counted as a second currency."""
    columns = ["VIN", "Price"]
    for defaults in ({}, {"defaults": {"currency": "USD"}}):
        _, spec = mapping.choose(columns, defaults or None)
        row = {"VIN": "1HGCM82633A004352", "Price": price}
        assert normalize(mapping.Plan(spec, columns).item(row, "row 1")).currency == currency
