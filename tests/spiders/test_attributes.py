"""The data-vin fallback: vehicles in card attributes, never in analytics or button tags."""

from __future__ import annotations

import pytest

from pipelines.amounts import best_price
from spiders.extract import attributes
from spiders.generic import extract as generic_extract

URL = "https://oak.example/inventory/"
CARDS = """<html><body>
<div class="car" data-vin="1hgcv1f30ra000001" data-year="2024" data-make="Honda"
     data-model="Accord" data-saleprice="$28,400" data-msrp="$29,900" data-intransit="true">
  <a href="/cars/1HGCV1F30RA000001"><img src="/img/accord.jpg"></a>
  <button data-vin="1HGCV1F30RA000001" data-stock="H100" data-year="2024">Save</button></div>
<div class="car" data-vehicle-vin="5TDKDRBH2SS210877" data-year="2025" data-make="Toyota"
     data-model="Highlander" data-price="0" data-odometer="12 mi" data-cpo="true"></div>
<div class="tracking" data-vin="1FMCU9G60LUA41236" data-event="view"></div>
<div class="compare" data-vin="1FMCU9G60LUA41236" data-year="2020"></div>
<span data-vin="NOT-A-VIN" data-year="2020" data-make="Ford"></span>
<script>var seen = '<div data-vin="JM3KFBCM4L1812330" data-year="2020" data-make="Mazda">';</script>
</body></html>"""


def test_cards_with_vehicle_facts_become_vehicles_and_traps_do_not():
    items = attributes.extract(CARDS, URL)
    assert [i.vin.upper() for i in items] == ["1HGCV1F30RA000001", "5TDKDRBH2SS210877"]


def test_one_vin_on_several_elements_is_one_vehicle_with_all_facts():
    accord = attributes.extract(CARDS, URL)[0]
    assert accord.stock_number == "H100"  # from the button inside the card
    assert accord.url == "https://oak.example/cars/1HGCV1F30RA000001"
    assert accord.image_urls == ["https://oak.example/img/accord.jpg"]
    assert best_price(accord)[:2] == (28400, 29900)
    assert accord.availability == "In Transit"


def test_placeholder_price_and_certified_flag():
    highlander = attributes.extract(CARDS, URL)[1]
    assert best_price(highlander)[0] is None
    assert highlander.condition == "certified" and highlander.mileage == "12 mi"


@pytest.mark.parametrize("status, flags, expected", [
    ("LIVE", {}, "In Stock"),
    ("IN_TRANSIT", {}, "In Transit"),
    ("IN_TRANSIT_AT_FACTORY", {}, "In Production"),
    ("Build Phase", {}, "In Production"),
    ("Sale Pending - In Transit", {}, "Sale Pending - In Transit"),
    (None, {"in_production": True}, "In Production"),
    (None, {"in_transit": True, "in_stock": False}, "In Transit"),
    ("on hold", {}, "On Hold"),
    (None, {}, None),
])
def test_availability_labels(status, flags, expected):
    assert attributes.availability(status, **flags) == expected


def test_generic_extract_prefers_structured_data_then_attributes():
    json_ld = ('<script type="application/ld+json">{"@type": "Car", "vehicleIdentificationNumber"'
               ': "JM3KFBCM4L1812330", "name": "2020 Mazda CX-5"}</script>')
    assert [i.vin for i in generic_extract(json_ld + CARDS, URL)] == ["JM3KFBCM4L1812330"]
    assert len(generic_extract(CARDS, URL)) == 2
