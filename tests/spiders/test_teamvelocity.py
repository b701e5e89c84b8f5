"""Team Velocity extraction details beyond the saved pages: item ids, account id, the API."""

from __future__ import annotations

import json
from pathlib import Path

from spiders.extract import teamvelocity as tv
from spiders.teamvelocity import extract

SITE = Path(__file__).resolve().parents[2] / "fixtures" / "sites" / "teamvelocity"
BASE = "https://www.bayshorenissan.example"


def test_vin_is_the_last_segment_of_the_item_id_when_it_looks_like_one():
    assert tv.vin_from_itemid("Nissan-Rogue-SV-jn8bt3bb8sw120455") == "JN8BT3BB8SW120455"
    assert tv.vin_from_itemid("Nissan-Versa-S-NOVIN") is None
    assert tv.vin_from_itemid("Nissan-Versa-S-1N4BL4DW0SN30118I") is None  # I is never in VINs
    assert tv.vin_from_itemid(None) is None


def test_api_url_uses_the_pages_account_id():
    html = (SITE / "inventory" / "new.html").read_text()
    assert tv.account_id(html) == "48213"
    assert tv.api_url(BASE + "/inventory/new?page=2", "JN8BT3BB8SW120455", "48213") == \
        BASE + "/api/Inventory/vehicle?vin=JN8BT3BB8SW120455&accountid=48213"


def test_next_page_follows_rel_next_and_stops_on_the_last_page():
    first = (SITE / "inventory" / "new.html").read_text()
    last = (SITE / "inventory" / "new__page-2.html").read_text()
    assert tv.next_page(first, BASE + "/inventory/new") == BASE + "/inventory/new?page=2"
    assert tv.next_page(last, BASE + "/inventory/new?page=2") is None


def test_inline_listing_state_and_sold_links_are_not_vehicles():
    html = (SITE / "cases" / "search-page-1-with-traps.html").read_text()
    vins = [i.vin for i in extract(html, BASE + "/inventory/new")]
    assert "1N4AL3APXHC112233" in html and "1N4AL3APXHC112233" not in vins
    assert len(vins) == 3


def test_api_prices_prefer_buy_for_then_selling_and_keep_msrp():
    record = {"vin": "JN8BT3BB8SW120455", "msrp": 34480, "sellingPrice": 33280,
              "buyFors": [{"buyForPrice": 32780}], "inTransit": False, "inProduction": False}
    [item] = extract(json.dumps(record), BASE + "/api/Inventory/vehicle?vin=x")
    assert item.prices == {"final": 32780, "sale_price": 33280, "msrp": 34480}
    assert item.availability is None  # no flags and no in-stock date: unknown, not "In Stock"


def test_reserved_in_transit_vehicle_is_sale_pending_in_transit():
    record = {"vin": "1N4BL4DW0SN301188", "inTransit": True, "reserved": True}
    [item] = extract(json.dumps(record), BASE + "/api")
    assert item.availability == "Sale Pending - In Transit"


def test_broken_or_vinless_api_answers_give_nothing():
    assert extract("{not json", BASE + "/api") == []
    assert extract(json.dumps({"error": "not found"}), BASE + "/api") == []
    assert [i.vin for i in extract(json.dumps([{"vin": "A"}, {"x": 1}]), BASE + "/api")] == ["A"]


def test_javascript_spider_with_extract_as_reads_cards_and_fetches_the_api_plainly():
    from spiders.javascript import Spider

    spider = Spider(url=BASE + "/inventory/new", dealer_settings={"extract_as": "teamvelocity"})
    html = (SITE / "inventory" / "new.html").read_text()
    cards = spider.extract_page(html, BASE + "/inventory/new")
    assert len(cards) == 3
    assert spider.detail_url(cards[0], html, BASE + "/inventory/new") == \
        BASE + "/api/Inventory/vehicle?vin=JN8BT3BB8SW120455&accountid=48213"
    assert spider.next_page_url(html, BASE + "/inventory/new") == BASE + "/inventory/new?page=2"
    request = spider.listing_request(BASE + "/inventory/new?page=2")
    assert request.meta["playwright"] is True  # result pages go through the browser
