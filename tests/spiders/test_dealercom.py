"""Dealer.com extraction from saved responses: the getInventory call, pages, final prices."""

from __future__ import annotations

import json
from pathlib import Path

from pipelines.amounts import best_price
from spiders.extract import attributes, dealercom

SITE = Path(__file__).resolve().parents[2] / "fixtures" / "sites" / "dealercom"
ORIGIN = "https://www.larkspurvalleyhonda.example"


def page(name: str) -> str:
    return (SITE / name).read_text().replace("{{BASE}}", ORIGIN)


def test_search_page_names_the_getinventory_call_and_its_body():
    call = dealercom.inventory_call(page("all-inventory/index.htm"), ORIGIN + "/all-inventory/")
    assert call.url == ORIGIN + "/api/widget/ws-inv-data/getInventory"
    assert call.body["siteId"] == "larkspurvalleyhonda"
    assert call.body["widgetName"] == "ws-inv-data"
    assert call.body["preferences"]["pageSize"] == "12"
    assert call.at(12)["inventoryParameters"]["start"] == ["12"]
    assert "start" not in call.body["inventoryParameters"]  # at() copies, never mutates


def test_pages_follow_by_offset_until_the_total():
    first = json.loads(page("api/getInventory/start-0.json"))
    last = json.loads(page("api/getInventory/start-12.json"))
    assert dealercom.page_info(first) == (0, 12, 21)
    assert dealercom.next_start(first) == 12
    assert dealercom.next_start(last) is None
    assert dealercom.next_start({"inventory": [], "pageInfo": {"totalCount": 50}}) is None
    assert dealercom.declared_total(first) == 21
    assert dealercom.declared_total({"inventory": [], "pageInfo": {}}) is None


def test_next_page_starts_after_the_entries_received_not_after_the_page_size():
    short = {"inventory": [{}] * 5, "pageInfo": {"pageStart": 12, "pageSize": 12,
                                                 "totalCount": 21}}
    assert dealercom.next_start(short) == 17  # entries 17-20 are asked for, not skipped


def test_final_price_is_the_line_marked_final_whatever_the_labels_say():
    pricing = {"retailPrice": "$49,995", "dprice": [
        {"typeClass": "msrp", "label": "Price", "value": "$49,995"},
        {"typeClass": "discount", "label": "Savings", "value": "$2,115", "isDiscount": True},
        {"typeClass": "finalPrice", "label": "Larkspur Price", "value": "$47,880",
         "isFinalPrice": True}]}
    assert dealercom.prices(pricing) == {"msrp": "$49,995", "final": "$47,880"}
    used = {"retailPrice": "", "dprice": [{"typeClass": "internetPrice", "label": "Sale Price",
                                            "value": "$21,250"}]}
    assert dealercom.prices(used) == {"internet_price": "$21,250"}


def test_analytics_copies_never_double_the_inventory():
    data = json.loads(page("api/getInventory/start-0.json"))
    assert len(data["pageInfo"]["trackingData"]) == 13  # 12 cars and a sold one
    items = dealercom.extract(json.dumps(data), ORIGIN + "/api/widget/ws-inv-data/getInventory")
    assert len(items) == 12 and len({i.vin.upper() for i in items}) == 12
    assert all(i.source.endswith("#start=0") for i in items)


def test_prices_on_the_api_answer_become_buyer_price_and_msrp():
    items = dealercom.extract(page("api/getInventory/start-0.json"), ORIGIN + "/api")
    by_vin = {i.vin.upper(): i for i in items}
    price, msrp, _ = best_price(by_vin["5J8ZE1H42RL005512"])  # final line after incentives
    assert (price, msrp) == (39295, 48795)
    price, msrp, notes = best_price(by_vin["2HGFE1E50SH700123"])  # "$1" final price
    assert price is None and msrp == 30100 and notes == ["price_placeholder"]


def test_search_page_vin_traps_yield_nothing():
    html = page("all-inventory/index.htm")
    assert "1HGCR2F56GA000317" in html and "4T1BF1FK6GU204418" in html
    assert dealercom.extract(html, ORIGIN + "/all-inventory/index.htm") == []
    assert attributes.extract(html, ORIGIN + "/all-inventory/index.htm") == []


def test_broken_json_yields_nothing():
    assert dealercom.extract('{"inventory": [', ORIGIN + "/api") == []
    assert dealercom.inventory_call("<script>fetch('/x/getInventory', {})</script>", ORIGIN) \
        is None
