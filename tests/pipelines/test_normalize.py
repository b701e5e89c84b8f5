"""Normalization on the values real sources send (fixtures/real/ holds real third-party data)."""

from __future__ import annotations

import csv
import gzip
import json
from decimal import Decimal
from pathlib import Path

import pytest

from crawler.models import VehicleItem
from pipelines import amounts, validate
from pipelines import normalize as n
from pipelines.text import text as text_of
from spiders.extract.structured import from_json_ld

REAL = Path(__file__).resolve().parents[2] / "fixtures" / "real"


@pytest.mark.parametrize("raw, expected", [
    ("$24,995", Decimal("24995.00")), ("24995.00", Decimal("24995.00")),
    ("$24,995*", Decimal("24995.00")), (24995, Decimal("24995.00")),
    ("USD 31,990.50", Decimal("31990.50")), ("24.995 €", Decimal("24995.00")),
    ("1 059 900 kr", Decimal("1059900.00")), ("Call for price", None), ("0", None),
    (0, None), (1, None), ("$1", None), ("", None), (None, None), ("TBD", None),
    ("99999999999", None),
])
def test_price_parses_real_spellings_and_drops_placeholders(raw, expected):
    assert amounts.price(raw)[0] == expected


def test_placeholder_prices_are_noted_not_stored():
    assert amounts.price("Call for price") == (None, "price_placeholder")
    assert amounts.price(1) == (None, "price_placeholder")


@pytest.mark.parametrize("raw, expected", [
    ("$399/mo", None), ("$399 / mo.", None), ("399 per month", None), ("$89/wk", None),
    ("$1,299/month", None), ("$459 a month", None), ("$250 bi-weekly", None),
    ("$24,995 or $399/mo", Decimal("24995.00")),
    ("$24,995 (est. $399/mo)", Decimal("24995.00")), ("$24,995 MSRP", Decimal("24995.00")),
    ("24995 mo", Decimal("24995.00")),  # no payment is that large
])
def test_a_monthly_payment_in_the_price_column_is_not_the_price(raw, expected):
    """Dealer feeds put lease and finance specials in the price column: "$399/mo" was
    stored as a price of $399, a price_changed event from $24,995 downstream."""
    assert amounts.price(raw)[0] == expected
    if expected is None:
        assert amounts.price(raw)[1] == "price_placeholder"


@pytest.mark.parametrize("raw, unit, miles", [
    ("12,345 mi", None, 12345), ("12345", None, 12345), ("28,112 miles", None, 28112),
    ("20 000 km", None, 12427), ({"value": "53100", "unitCode": "KMT"}, None, 32995),
    ("53100", "KMT", 32995), ({"@type": "QuantitativeValue", "value": 14020,
                               "unitCode": "SMI"}, None, 14020),
    ("20 600 mil", None, 128002),  # Swedish mil = 10 km (fixtures/real/sweden)
    ("-5", None, None), ("n/a", None, None),
])
def test_mileage_in_miles_whatever_the_unit(raw, unit, miles):
    assert amounts.mileage(raw, unit) == miles


def bytbil_listings() -> list[dict]:
    """Each listing's title, year, mileage and price text as the parsed page carries it
    (fixtures/real/sweden/bytbil_se__volvo_xc60.html, Bytbil.com)."""
    import lxml.html

    doc = lxml.html.fromstring((REAL / "sweden" / "bytbil_se__volvo_xc60.html").read_bytes())
    out = []
    for li in doc.cssselect("li.result-list-item"):
        title = li.cssselect("h3 a")[0].text_content().strip()
        facts = li.cssselect("div.uk-width-medium-3-4 p.uk-text-truncate")[0].text_content()
        year, mileage, _place = (p.strip() for p in facts.split("|"))
        price = li.cssselect(".car-price-main")[0].text_content().strip()
        out.append({"title": title, "year": year, "mileage": mileage, "price": price})
    return out


def test_bytbil_separates_thousands_with_no_break_spaces():
    first = bytbil_listings()[0]
    assert first["price"] == "489\xa0900 kr" and first["mileage"] == "4\xa0466 mil"


@pytest.mark.parametrize("index, price, mileage_mil", [
    (0, Decimal("489900.00"), 4466),   # Volvo XC60 T6 Core Special Edition, 2025
    (1, Decimal("499900.00"), 7093),   # Volvo XC60 Recharge T6 Plus Dark, 2024
    (2, Decimal("184900.00"), 14391),  # Volvo XC60 D4 aut Ocean Race, 2015
])
def test_no_break_space_thousands_keep_the_whole_price_and_mileage(index, price, mileage_mil):
    row = bytbil_listings()[index]
    assert amounts.price(row["price"]) == (price, None)
    # 1 Swedish mil = 10 km; stored in miles
    expected_miles = int((Decimal(mileage_mil) * 10 / amounts.KM_PER_MILE).to_integral_value())
    assert amounts.mileage(row["mileage"]) == expected_miles


@pytest.mark.parametrize("raw, expected", [
    ("489\u202f900 kr", Decimal("489900.00")),  # narrow no-break space (CLDR fr, sv)
    ("489\u2009900 kr", Decimal("489900.00")),  # thin space
    ("1\xa0059\xa0900\xa0kr", Decimal("1059900.00")),
    ("24\u202f995,50\xa0€", Decimal("24995.50")),
])
def test_price_with_unicode_space_separators(raw, expected):
    assert amounts.price(raw) == (expected, None)


def test_mileage_with_unicode_space_separators_and_unit():
    assert amounts.mileage("20\u202f000\xa0km") == amounts.mileage("20 000 km") == 12427
    assert amounts.mileage("4\u2009466\u202fmil") == amounts.mileage("4 466 mil") == 27750


@pytest.mark.parametrize("raw, expected", [
    ("New", "new"), ("NEW", "new"), ("https://schema.org/NewCondition", "new"),
    ("Used", "used"), ("Pre-Owned", "used"), ("pre-owned", "used"),
    ("Used - Like New", "used"), ("Pre-Owned, like new", "used"),
    ("Certified Pre-Owned", "certified"), ("CPO", "certified"), ("certified", "certified"),
    ("https://schema.org/UsedCondition", "used"), ("", None), ("banana", None),
])
def test_condition_words(raw, expected):
    assert n.condition(raw) == expected


@pytest.mark.parametrize("raw, expected", [
    ("CHEVROLET", "Chevrolet"), ("Chevy", "Chevrolet"), ("chevy", "Chevrolet"),
    ("Mercedes-Benz", "Mercedes-Benz"), ("MERCEDES BENZ", "Mercedes-Benz"),
    ("VW", "Volkswagen"), ("TOYOTA", "Toyota"), ("bmw", "BMW"), ("Land Rover", "Land Rover"),
    ("KOENIGSEGG", "Koenigsegg"), ("McLaren", "McLaren"),
])
def test_make_spellings(raw, expected):
    assert n.make(raw) == expected


@pytest.mark.parametrize("raw, expected", [
    ("1hgcm82633a004352", "1HGCM82633A004352"), (" 1HGCM 82633A 004352 ", "1HGCM82633A004352"),
    ("1HG-CM826-33A004352", "1HGCM82633A004352"), (None, ""),
])
def test_vin_case_and_separators(raw, expected):
    assert n.vin(raw) == expected


def _snapshot_rows():
    for path in sorted((REAL / "jkomskis-daily").glob("inventory_*.json.gz"))[:10]:
        with gzip.open(path, "rt") as fh:
            yield from json.load(fh)


def test_real_daily_snapshots_normalize_to_canonical_values():
    rows = list(_snapshot_rows())
    assert len(rows) > 2000
    for row in rows:
        item = VehicleItem(source="row", vin=row["vin"], year=row["year"], trim=row["trim"],
                           drivetrain=row["drivetrain"], exterior_color=row["exterior_color"],
                           price=row["total_price"], msrp=row["msrp"],
                           availability=row["status"], url=row["detail_url"],
                           stock_number=row["stock_number"], make="Toyota", model="RAV4")
        v = n.normalize(item)
        assert v.vin == (row["vin"] or "").upper().replace(" ", "")
        assert v.year == (int(row["year"]) if row["year"] else None)
        if isinstance(row["total_price"], (int, float)) and row["total_price"] > 100:
            assert v.price == Decimal(str(row["total_price"])).quantize(Decimal("0.01"))
        else:
            assert v.price is None
        assert v.drivetrain in (None, "AWD", "FWD", "4WD", "RWD")
        assert v.availability == (row["status"] or None)


def test_real_vpic_vins_survive_case_and_spacing():
    with open(REAL / "vins-vpic" / "all_vins_decoded.csv") as fh:
        vins = [r["vin"] for r in csv.DictReader(fh)]
    assert len(vins) > 9000
    for vin in vins:
        messy = " " + vin.lower()[:8] + " " + vin.lower()[8:] + " "
        assert n.vin(messy) == vin.upper()


def test_schema_org_car_example_with_old_vin_property_and_kilometres():
    doc = (REAL / "jsonld" / "sdo-automobile-example_car_jsonld.json").read_text()
    html = f'<script type="application/ld+json">{doc}</script>'
    [item] = from_json_ld(html, "https://example.test/car")
    v = n.normalize(item)
    assert v.mileage == 32995  # 53,100 km
    assert v.price == Decimal("18000.00") and v.currency == "USD"
    assert v.year == 2009 and v.transmission == "Automatic" and v.drivetrain == "FWD"
    # its VIN is a masked placeholder ('WVWZZZ1KZ9U######'): rejected with the reason
    ok, rejects = validate.batch([(item, v)])
    assert ok == [] and "is not 17 letters and digits" in rejects[0].reasons[0]


def test_best_price_prefers_what_a_buyer_pays_and_keeps_msrp():
    item = VehicleItem(source="x", prices={"MSRP": "$41,250", "Sale Price": "$38,990",
                                           "Final Price": "$37,490"})
    price, msrp, notes = amounts.best_price(item)
    assert price == Decimal("37490.00") and msrp == Decimal("41250.00") and notes == []


def test_image_urls_from_joined_strings_and_objects():
    assert n.image_urls("https://a.test/1.jpg|https://a.test/2.jpg,https://a.test/1.jpg") == [
        "https://a.test/1.jpg", "https://a.test/2.jpg"]
    assert n.image_urls([{"url": "/p/1.jpg"}, "//cdn.test/2.jpg"], "https://d.test/car") == [
        "https://d.test/p/1.jpg", "https://cdn.test/2.jpg"]


def test_an_image_url_that_cannot_be_joined_is_dropped_not_raised():
    """A relative photo link like `//[x` (a broken IPv6 host) made urljoin raise ValueError
    out of normalize: found by the property test. It is no image; the others are kept."""
    base = "https://d.test/inventory/"
    assert n.image_urls(["//[x/1.jpg", "/p/2.jpg", "//["], base) == ["https://d.test/p/2.jpg"]
    item = VehicleItem(source="row 1", vin="1HGCM82633A004352", image_urls=["//[x"],
                       url=base)
    assert n.normalize(item).image_urls == []
    assert n.normalize(VehicleItem(source="row 2", vin="1HGCM82633A004352", url="//[x")).url \
        is None


def test_raw_item_is_the_item_validation_would_build():
    from crawler.models import raw_item

    fields = {"vin": " 1hgcm82633a004352 ", "make": "honda", "price": "$1,000"}
    fast = raw_item("row 7", {**fields, "not_a_field": 3}, {"VIN": "x"}, source_hash="ab")
    slow = VehicleItem(source="row 7", raw={"VIN": "x"}, source_hash="ab", not_a_field=3,
                       **fields)
    assert fast == slow and fast.model_fields_set == slow.model_fields_set
    assert fast.model_dump(mode="json") == slow.model_dump(mode="json")
    assert n.normalize(fast) == n.normalize(slow)


def test_memoised_normalizers_answer_as_the_plain_ones():
    for fn in (n.condition, n.make, n.year, n.drivetrain, n.transmission, text_of):
        plain = getattr(fn, "__wrapped__", None)
        for value in ("Used", " chevy ", "2021", "All-Wheel Drive", "6-Speed A/T", "  n/a ",
                      "Pre-Owned", "a  b\tc"):
            assert fn(value) == fn(value) == (plain(value) if plain else fn(value))
    assert text_of("  two  spaces ") == "two spaces" and text_of(" N/A ") is None


def _vehicle(**fields):
    return n.normalize(VehicleItem(source="row 2", vin="1HGCM82633A004352", **fields))


def test_a_boolean_is_never_text_and_a_number_is_no_make_or_link():
    """JSON feeds' false/true were stored as the text 'False'/'True' (a url of 'False');
    a number became a make. Dropped per field, each with a flag naming the field; a number
    where one is plausible (a Mazda '3', stock number 12345) stays."""
    v = _vehicle(url=False, make=5, model=3, stock_number=12345, condition=True,
                 exterior_color=False, trim=328, description=True)
    assert (v.url, v.make, v.condition, v.exterior_color, v.description) == (None,) * 5
    assert (v.model, v.stock_number, v.trim) == ("3", "12345", "328")
    assert {"url_not_text", "make_not_text", "condition_not_text",
            "exterior_color_not_text", "description_not_text"} <= set(v.quality_flags)
    plain = _vehicle(url="https://d.test/v/1", make="Honda", model="Accord")
    assert plain.quality_flags == [] and plain.url == "https://d.test/v/1"


@pytest.mark.parametrize("url", ["javascript:void(0)", "data:text/html;base64,AAAA",
                                 "mailto:sales@dealer.test", "tel:+15551234"])
def test_a_url_that_is_no_page_is_dropped_with_a_flag(url):
    v = _vehicle(url=url, make="Honda")
    assert v.url is None and "url_not_a_page" in v.quality_flags
    kept = _vehicle(url="/inventory/used-2003-honda-accord", make="Honda")
    assert kept.url == "/inventory/used-2003-honda-accord" and not kept.quality_flags


@pytest.mark.parametrize("field, value", [
    ("make", "data:image/png;base64,AAAA"), ("model", "https://dealer.test/accord"),
    ("trim", "www.dealer.test/ex-l"), ("make", "//cdn.dealer.test/logo.png"),
    ("model", "HTTP://DEALER.TEST/X"),
])
def test_a_link_or_data_uri_in_a_name_field_rejects_the_vehicle_with_the_field(field, value):
    fields = {"make": "Honda", "model": "Accord", field: value}
    why = validate.reasons(_vehicle(**fields))
    assert any(r.startswith(f"{field} ") and "link" in r for r in why), why
    assert validate.reasons(_vehicle(make="Honda", model="Accord", trim="EX-L 2.0T")) == []


@pytest.mark.parametrize("raw, unit, miles", [
    ("1.2 million", None, 1_200_000), ("1,2 million km", None, 745_645),
    ("1.2 Million miles", None, 1_200_000), ("3 million", None, None),
    ("0.1 mln", None, 100_000),
])
def test_mileage_in_millions_is_read_as_millions(raw, unit, miles):
    """'1.2 million' was read as 1 mile."""
    assert amounts.mileage(raw, unit) == miles


@pytest.mark.parametrize("raw, expected", [
    ("$1.2 million", Decimal("1200000.00")), ("1.2M", Decimal("1200000.00")),
    ("$1.2MM", Decimal("1200000.00")), ("$2.5 mil", Decimal("2500000.00")),
    ("1,2 Mio €", Decimal("1200000.00")), ("0.5 mln", Decimal("500000.00")),
    ("$25k", Decimal("25000.00")), ("25K", Decimal("25000.00")),
    ("€ 18,5 k", Decimal("18500.00")), ("$15.5k", Decimal("15500.00")),
    ("18.5K obo", Decimal("18500.00")), ("Price: $25k", Decimal("25000.00")),
    ("25 thousand", Decimal("25000.00")), ("$25K-$30K", Decimal("25000.00")),
    ("₹12.5 lakh", Decimal("1250000.00")), ("12,50,000", Decimal("1250000.00")),
    ("twenty thousand", Decimal("20000.00")),
    ("Twenty-four thousand nine hundred ninety-five dollars", Decimal("24995.00")),
    ("one hundred and five thousand", Decimal("105000.00")),
    ("12'345.00", Decimal("12345.00")), ("CHF 12'345.-", Decimal("12345.00")),
    ("CHF 12’345", Decimal("12345.00")),
    # unchanged: payments, plain and European spellings, a unit that is no magnitude
    ("$24,995 MSRP", Decimal("24995.00")), ("25000 kr", Decimal("25000.00")),
    ("12,345.67", Decimal("12345.67")), ("12.345,67 €", Decimal("12345.67")),
])
def test_a_price_with_a_magnitude_in_words_or_a_suffix_is_read_whole(raw, expected):
    """'$1.2 million', '$25k', '€ 18,5 k' and 'twenty thousand' were read as 1.2, 25, 18.5
    and nothing, then dropped as placeholders (a real price, refused unsaid); a Swiss
    '12'345' as 12."""
    assert amounts.price(raw) == (expected, None)


@pytest.mark.parametrize("raw, note", [
    ("$1.2bn", "price_implausible"), ("$25,000k", "price_implausible"),
    ("-$5,000", "price_implausible"), ("- $5,000", "price_implausible"),
    ("−€5.000", "price_implausible"), ("$-5,000", "price_implausible"),
    ("-5000", "price_implausible"),
    ("$399/mo", "price_placeholder"), ("$1.2k/mo", "price_placeholder"),
    ("Call for price", "price_placeholder"), ("$0", "price_placeholder"),
    ("0.00", "price_placeholder"), ("-1", "price_placeholder"),
    ("one", "price_placeholder"), ("N/A", None), ("", None),
    ("one hundred percent financing", "price_placeholder"),
    ("Call, one owner", "price_placeholder"),
])
def test_a_price_that_is_no_price_is_refused_never_stored(raw, note):
    """A negative amount (a rebate in the price column) is no price: '-$5,000' was stored
    as $5,000."""
    assert amounts.price(raw) == (None, note)


@pytest.mark.parametrize("raw, miles", [
    ("~50k", 50_000), ("approx. 45K miles", 45_000), ("Odometer: 12.5k mi", 12_500),
    ("15k mi", 15_000), ("15 000 km", 9321), ("12,345.67", 12346), ("12.345 km", 7671),
    ("12'345 km", 7671), ("0", 0),
    ("1.5L", None), ("2.0L V6", None), ("1.5 litre", None), ("3.6 liters", None),
    ("-500", None), ("N/A", None), ("TMU", None),
])
def test_mileage_spellings_are_read_right_or_refused(raw, miles):
    """'~50k' was 50 miles (the K only counted at the very start), an engine size in the
    mileage column ('1.5L') was 2 miles, a Swiss '12'345 km' was 7 miles."""
    assert amounts.mileage(raw) == miles


@pytest.mark.parametrize("raw, expected", [
    ("Was $30,000 Now $28,000", (Decimal("28000.00"), None)),
    ("Was: $30,000, now only $27,500*", (Decimal("27500.00"), None)),
    ("Reg. 31.990 € – jetzt 29.990 €", (Decimal("31990.00"), None)),  # English words only
    ("Now $28,000", (Decimal("28000.00"), None)), ("$28,000 now", (Decimal("28000.00"), None)),
    ("Price now reduced: $28,000", (Decimal("28000.00"), None)),
])
def test_a_was_now_price_is_the_price_now(raw, expected):
    """A price column saying 'Was $30,000 Now $28,000' was stored as $30,000: what the car
    cost, not what a buyer pays."""
    assert amounts.price(raw) == expected


def _priced(price, currency=None):
    return n.normalize(VehicleItem(source="row 1", vin="1HGCM82633A004352", price=price,
                                   currency=currency))


@pytest.mark.parametrize("raw, amount, currency", [
    ("€ 18,5 k", "18500.00", "EUR"), ("18.500 €", "18500.00", "EUR"),
    ("£12,995", "12995.00", "GBP"), ("CHF 12'345.-", "12345.00", "CHF"),
    ("EUR 18500", "18500.00", "EUR"), ("EUR18500", "18500.00", "EUR"),
    ("18500 EUR", "18500.00", "EUR"), ("A$29,990", "29990.00", "AUD"),
    ("R$ 89.900", "89900.00", "BRL"), ("US$ 25,000", "25000.00", "USD"),
    ("Was €30.000 Now €28.000", "28000.00", "EUR"),
    # nothing that names one currency: the default (USD here)
    ("$25,000", "25000.00", "USD"), ("12 500 kr", "12500.00", "USD"),
    ("24995", "24995.00", "USD"), ("25000 OBO", "25000.00", "USD"),
    ("€18,500 / £16,000", "18500.00", "USD"), ("$20,000 (€18,500)", "20000.00", "USD"),
])
def test_a_price_that_names_its_currency_gives_the_vehicle_that_currency(raw, amount,
                                                                         currency):
    """A row without a currency field was stored in USD whatever its price said: '€ 18,5 k'
    as 18,500 USD. Only an unambiguous symbol or ISO code counts: '$' and 'kr' name several
    currencies, and two different currencies name none."""
    v = _priced(raw)
    assert (v.price, v.currency) == (Decimal(amount), currency)


@pytest.mark.parametrize("stated", ["EUR", "eur"])
def test_a_stated_currency_wins_over_the_price_text(stated):
    assert _priced("£12,995", stated).currency == "EUR"
    assert _priced("$25,000", stated).currency == "EUR"  # '$' invents no currency


@pytest.mark.parametrize("stated, code", [
    ("€", "EUR"), ("£", "GBP"), ("円", "JPY"), ("₹", "INR"), ("zł", "PLN"),
    ("US$", "USD"), ("us$", "USD"), ("C$", "CAD"), ("a$", "AUD"),
    ("usd", "USD"), ("GBP ", "GBP"), (" eur\n", "EUR"), ("Euro", "EUR"), ("euros", "EUR"),
    ("EUROS", "EUR"), ("pounds", "GBP"), ("Pound Sterling", "GBP"), ("pounds sterling", "GBP"),
    ("yen", "JPY"), ("US dollars", "USD"), ("U.S. Dollar", "USD"),
    ("ALL", "ALL"),  # Albanian lek: a word in a price's text, a code where it is stated
])
def test_a_stated_currency_is_stored_as_its_iso_code(stated, code):
    """A currency column or JSON-LD priceCurrency holding a symbol or a name was stored
    verbatim ('€', 'US$') or cut to three letters ('pounds' as 'POU')."""
    v = _priced("18500", stated)
    assert v.currency == code and "currency_unknown" not in v.quality_flags


@pytest.mark.parametrize("stated, price, code", [
    ("Bitcoin", "18500", "USD"), ("XYZ", "18500", "USD"), ("978", "18500", "USD"),
    ("EUR/USD", "18500", "USD"), ("Bitcoin", "€ 18.500", "EUR"), ("??", "£12,995", "GBP"),
])
def test_a_stated_currency_that_is_none_is_not_stored_and_is_flagged(stated, price, code):
    """What no currency names is not stored as one (it was, 'BIT', 'XYZ', '978'): the
    vehicle's currency is the one its price names, else the default; the flag says why."""
    v = _priced(price, stated)
    assert v.currency == code and "currency_unknown" in v.quality_flags


@pytest.mark.parametrize("stated, price, code", [
    ("$", "18500", "USD"), ("$", "£12,995", "GBP"), ("dollars", "€ 18.500", "EUR"),
    ("kr", "18500", "USD"), ("¥", "18500", "USD"), ("Rupees", "18500", "USD"),
    ("", "€ 18.500", "EUR"), ("N/A", "18500", "USD"),
])
def test_a_stated_mark_of_several_currencies_counts_as_none_stated(stated, price, code):
    """'$', 'kr', 'dollars' each stand for several currencies, as in a price's text: the
    price's own mark, else the default, and no flag (nothing unreadable was stated)."""
    v = _priced(price, stated)
    assert v.currency == code and "currency_unknown" not in v.quality_flags


def test_a_currency_in_a_labelled_price_counts_when_the_item_states_none():
    item = VehicleItem(source="https://d.test/car", vin="1HGCM82633A004352",
                       prices={"MSRP": "31.990 €", "Final Price": "29.990 €"})
    v = n.normalize(item)
    assert (v.price, v.msrp, v.currency) == (Decimal("29990.00"), Decimal("31990.00"), "EUR")


@pytest.mark.parametrize("raw, currency, amount", [
    ("¥12,800,000", "JPY", "12800000.00"), ("12,800,000", "JPY", "12800000.00"),
    ("₩45,000,000", None, "45000000.00"), ("₹1.2 crore", None, "12000000.00"),
    ("HUF 25 990 000", None, "25990000.00"), ("Rp 1.250.000.000", None, "1250000000.00"),
    ("15.500.000.000 ₫", None, "15500000000.00"), ("COP 189.900.000", None, "189900000.00"),
])
def test_a_price_in_a_currency_of_small_units_is_not_refused_as_implausible(raw, currency,
                                                                            amount):
    """The 10,000,000 ceiling is meant for dollars and euros: a ¥12.8M car (about $85k), a
    ₩45M one or a ₹1.2 crore one was refused as an implausible price."""
    v = _priced(raw, currency)
    assert v.price == Decimal(amount) and "price_implausible" not in v.quality_flags


@pytest.mark.parametrize("raw, currency", [
    ("12,800,000", "USD"), ("€ 12.800.000", None), ("12,800,000", "GBP"),
    ("¥ 2,000,000,000", "JPY"), ("₩ 200,000,000,000", None),
])
def test_each_currency_keeps_a_ceiling(raw, currency):
    v = _priced(raw, currency)
    assert v.price is None and "price_implausible" in v.quality_flags


def test_the_ceiling_is_per_currency_and_ten_million_by_default():
    assert amounts.ceiling("USD") == amounts.ceiling("EUR") == amounts.ceiling("XYZ") \
        == 10_000_000
    assert amounts.ceiling("JPY") == amounts.ceiling("INR") == 1_000_000_000
    # every ceiling fits the price column, numeric(16, 2) (migration 0017)
    assert max(map(amounts.ceiling, amounts.ISO_CODES)) < Decimal("1e14")
    assert amounts.price("12,800,000", "JPY") == (Decimal("12800000.00"), None)
    assert amounts.price("12,800,000") == (None, "price_implausible")


@pytest.mark.parametrize("raw, expected", [
    ("2019 $25,000", "25000.00"), ("2019 - $25,000", "25000.00"),
    ("2019: € 18.500", "18500.00"), ("2019 18.500 €", "18500.00"),
    ("2019 EUR 18500", "18500.00"), ("2021 25 990 kr", "25990.00"),
    ("1998 $4.5k", "4500.00"), ("2019 Was $30,000 Now $28,000", "28000.00"),
    ("2019, $25,000", "25000.00"), ("2019 Honda Civic EX $25,000", "25000.00"),
    # unchanged: no other amount, or none marked as money
    ("2019", "2019.00"), ("$2019", "2019.00"), ("2019 ", "2019.00"),
    ("$2,019", "2019.00"), ("2019.00", "2019.00"), ("2500 $25,000", "2500.00"),
    ("2019,000 €", "2019000.00"), ("2019-2021", "2019.00"),
])
def test_a_model_year_before_a_price_is_not_the_price(raw, expected):
    """'2019 $25,000', a title-like price cell, was stored as a price of 2,019."""
    assert amounts.price(raw) == (Decimal(expected), None)


def test_a_year_before_an_amount_not_marked_as_money_stays_refused():
    assert amounts.price("2019 25,000 miles") == (None, "price_implausible")


@pytest.mark.parametrize("raw, currency", [
    ("$32,995 CAD", "CAD"), ("CAD $32,995", "CAD"), ("$29,990 AUD", "AUD"),
    ("$ 350.000 MXN", "MXN"), ("¥3,200,000 JPY", "JPY"), ("125 000 kr SEK", "SEK"),
    # the symbol cannot stand for the code's currency: two currencies, so none
    ("$20,000 EUR", "USD"), ("¥3,200,000 KRW", "USD"), ("kr 125 000 USD", "USD"),
])
def test_a_code_beside_a_symbol_of_several_currencies_names_the_currency(raw, currency):
    """'$32,995 CAD' was stored in USD: the '$' was taken for a second currency beside CAD,
    so the text named none (a feed's trailing code used to give CAD). A code says which of
    the symbol's currencies it is; one the symbol cannot stand for still names two."""
    assert _priced(raw).currency == currency


@pytest.mark.parametrize("raw, expected", [
    ("2019-25,000 €", "25000.00"), ("2019-18.500 €", "18500.00"),
    ("2019 -25,000 €", "25000.00"), ("2000-2500 €", "2500.00"),
])
def test_a_dash_after_a_model_year_is_no_minus_sign(raw, expected):
    """A dash may follow the model year ('2019 - $25,000'), but one right before the amount
    ('2019-25,000 €') was read as its minus sign: a negative price, refused as implausible,
    where the code before read 2,019."""
    assert amounts.price(raw) == (Decimal(expected), None)
