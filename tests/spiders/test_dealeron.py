"""DealerOn extraction from saved listing pages: card attributes, price library, pages."""

from __future__ import annotations

import base64
from pathlib import Path

from pipelines.amounts import best_price
from spiders.extract import dealeron

CASES = Path(__file__).resolve().parents[2] / "fixtures" / "sites" / "dealeron" / "cases"
URL = "https://www.riverbendchevrolet.example/searchall.aspx"
PAGE1 = (CASES / "searchall-page-1.html").read_text()


def test_price_library_is_decoded_into_labelled_prices():
    lib = base64.b64encode(b"MSRP:52090.0;Selling Price:49090.0;calc_INTERNET PRICE:49090.0;"
                           b"calc_FINAL PRICE AFTER REBATES:41590.0").decode().rstrip("=")
    assert dealeron.price_library(lib) == {
        "msrp": "52090.0", "selling_price": "49090.0", "internet_price": "49090.0",
        "final_price_after_rebates": "41590.0"}
    assert dealeron.price_library("%%%") == {}


def test_cards_carry_prices_availability_and_condition():
    items = {i.vin.upper(): i for i in dealeron.extract(PAGE1, URL)}
    assert len(items) == 12
    blazer = items["3GNKDBRJXRS147203"]
    assert best_price(blazer)[:2] == (49090, 52090)  # not the conditional-rebate price
    assert blazer.availability == "In Transit"
    trax = items["KL77LHE25SC031208"]  # data-dotagging-item-price says 995
    assert trax.raw["dotagging-item-price"] == "995" and best_price(trax)[0] == 23195
    escape = items["1FMCU9HD4KUA20188"]  # data-price "0", no price library
    assert escape.prices is None and best_price(escape)[0] is None
    assert items["3GNAXXEVXNL301177"].condition == "certified"
    assert items["1GNSKPKDXSR188107"].availability == "In Production"
    assert items["3GNAXKEG9RL214087"].exterior_color == "Radiant Red Tintcoat"


def test_vin_traps_on_the_listing_yield_nothing():
    vins = {i.vin.upper() for i in dealeron.extract(PAGE1, URL)}
    tagging = dealeron.tagging_data(PAGE1)
    assert "1G1ZD5ST0HF009931" in tagging["items"]  # a sold car in the analytics list
    assert "1GNKVGKD4FJ220187" in PAGE1  # the redirect map and an old link
    assert not {"1G1ZD5ST0HF009931", "1GNKVGKD4FJ220187"} & vins


def test_other_pages_come_from_item_count_and_page_size():
    assert dealeron.page_urls(PAGE1, URL) == [URL + "?pt=2"]
    assert dealeron.page_urls(PAGE1, URL + "?pn=6&st=Price+asc") == [
        URL + "?pn=6&st=Price+asc&pt=2", URL + "?pn=6&st=Price+asc&pt=3"]
    assert dealeron.page_urls(PAGE1, URL + "?pt=2") == []
    no_count = PAGE1.replace('"itemCount": 15', '"itemCount": null')
    assert dealeron.page_urls(no_count, URL) == [URL + "?pt=2"]  # its <link rel="next">


def test_page_size_is_what_page_one_shows_unless_the_url_says():
    cards = PAGE1.split('<div class="vehicle-card')
    six = '<div class="vehicle-card'.join(cards[:7]) + "</div></body></html>"
    assert len(dealeron.listed(six, [])) == 6
    assert dealeron.page_urls(six, URL) == [URL + "?pt=2", URL + "?pt=3"]  # 15 at 6 a page
    assert dealeron.page_urls(six, URL + "?pn=12") == [URL + "?pn=12&pt=2"]
    one_page = PAGE1.replace('"itemCount": 15', '"itemCount": 12')
    assert dealeron.page_urls(one_page, URL) == []


def test_a_page_lists_its_cards_once_each_even_without_a_vin():
    items = dealeron.extract(PAGE1, URL)
    keys = dealeron.listed(PAGE1, items)
    assert len(set(keys)) == 12 and dealeron.declared_total(PAGE1) == 15
    no_vin = '<div data-vehicle-information data-year="2019"></div>'
    assert dealeron.listed(no_vin, []) == ["card:0"]
    assert dealeron.search_key(URL + "?st=Price+asc&pt=3") == URL + "?st=Price+asc"


def test_item_list_links_complete_cards_without_a_link():
    html = ('<div data-vehicle-information data-vin="1G1ZG5ST3NF150902" data-year="2022" '
            'data-make="Chevrolet" data-model="Malibu"></div><script type="application/ld+json">'
            '{"@type": "ItemList", "itemListElement": [{"@type": "ListItem", "position": 1, '
            '"url": "/used-Riverbend-2022-Chevrolet-Malibu-RS-1G1ZG5ST3NF150902"}]}</script>')
    (item,) = dealeron.extract(html, URL)
    assert item.url.endswith("/used-Riverbend-2022-Chevrolet-Malibu-RS-1G1ZG5ST3NF150902")


def test_colour_footnotes_are_stripped():
    assert dealeron.plain('Red Tintcoat <a href="#d"><sup>3</sup></a>') == "Red Tintcoat"
    assert dealeron.plain("Black [Extra_Cost_Color]") == "Black"
