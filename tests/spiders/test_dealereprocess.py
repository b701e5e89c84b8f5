"""Dealer eProcess extraction details beyond the saved pages: pager, price labels, scoping."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

from spiders.dealereprocess import extract
from spiders.extract import dealereprocess as dep

CASES = Path(__file__).resolve().parents[2] / "fixtures" / "sites" / "dealereprocess" / "cases"
BASE = "https://www.cedarhollowtoyota.example"


def pager(current: int, count: int) -> str:
    return (f'<div class="srp_pagination_links_container"><script>var current_page = {current};'
            f' var page_count = {count};</script></div>')


def test_next_page_keeps_parameter_order_and_unencoded_colon_names():
    url = BASE + "/search/new-toyota-rav4-cedar-hollow-or/?s:pr=1&ct=12&tp=new"
    assert dep.next_page(pager(1, 3), url) == url + "&p=2"
    assert dep.next_page(pager(2, 3), url + "&p=2") == url + "&p=3"


def test_last_page_and_pageless_results_have_no_next_page():
    assert dep.next_page(pager(3, 3), BASE + "/search/x/?p=3") is None
    assert dep.next_page("<html><body>no pager</body></html>", BASE + "/search/x/") is None


def test_dealer_branded_price_labels_map_to_pipeline_labels():
    assert dep.price_key("TSRP") == "msrp"
    assert dep.price_key("Advertised Price") == "final"
    assert dep.price_key("Cedar Hollow ePrice") == "internet_price"
    assert dep.price_key("Sale Price") == "sale_price"
    assert dep.price_key("Selling Price") == "selling_price"
    assert dep.price_key("Price") == "price"
    for nobody_pays in ("Dealer Discount", "Toyota Rebate", "Est. Payment", "Total Savings",
                        "Conditional Offer"):
        assert dep.price_key(nobody_pays) is None


def test_recently_viewed_cards_on_a_results_page_are_not_inventory():
    html = (CASES / "search-page-1-with-traps.html").read_text()
    vins = [i.vin for i in extract(html, BASE + "/search/all-cedar-hollow-or/")]
    assert "JTDKARFU8G3017755" in html  # the trap is on the page ...
    assert "JTDKARFU8G3017755" not in vins and len(vins) == 3  # ... but not in the result


def test_detail_page_gives_its_own_vehicle_not_the_similar_ones():
    html = (CASES / "vdp-in-transit.html").read_text()
    items = extract(html, BASE + "/auto/new-2025-toyota-rav4-cedar-hollow-or/10482577/")
    assert [i.vin for i in items] == ["2T3P1RFV4SW087712"]
    assert items[0].prices == {"msrp": "$38,910", "final": "$38,910"}
    assert items[0].availability == "In Transit"


def test_card_vin_comes_from_labels_when_data_vehicle_is_broken():
    card = ('<div class="vehicle_item" data-vehicle="%7Bbroken"><h2 class="vehicle_title">'
            '<a href="/auto/used-2018-ford-escape/1/">Pre-Owned 2018 Ford Escape SE</a></h2>'
            '<span class="bolded_label_value"><span class="bolded_label_value__label">VIN</span>'
            '<span class="bolded_label_value__value">1FMCU9GD5JUA00001</span></span></div>')
    [item] = extract(f"<html><body>{card}</body></html>", BASE + "/search/x/")
    assert item.vin == "1FMCU9GD5JUA00001" and item.url == BASE + "/auto/used-2018-ford-escape/1/"
    assert item.condition == item.year == "Pre-Owned 2018 Ford Escape SE"


def test_data_vehicle_is_url_encoded_json():
    raw = quote(json.dumps({"vin": "X", "vdpHref": "/auto/a/1/"}))
    assert dep.data_vehicle(raw) == {"vin": "X", "vdpHref": "/auto/a/1/"}
    assert dep.data_vehicle("%5B1%2C2%5D") == {} and dep.data_vehicle(None) == {}


def test_a_detail_page_about_another_vehicle_keeps_the_listing_card():
    from scrapy.http import HtmlResponse, Request
    from scrapy.utils.test import get_crawler

    from spiders.dealereprocess import Spider

    crawler = get_crawler(Spider)
    spider = Spider.from_crawler(crawler, url=BASE + "/search/all-cedar-hollow-or/")
    crawler.stats.open_spider()
    listing = (CASES / "search-page-1-with-traps.html").read_text()
    camry, rav4_card = extract(listing, BASE + "/search/all-cedar-hollow-or/")[:2]
    vdp = (CASES / "vdp-in-transit.html").read_text()  # the RAV4's page
    url = BASE + "/auto/new-2025-toyota-rav4-cedar-hollow-or/10482577/"
    response = HtmlResponse(url, body=vdp.encode(), encoding="utf-8", request=Request(url))
    # the Camry's link led to the RAV4's page: the Camry stays as its card showed it
    assert list(spider.parse_detail(response, card=camry)) == [camry]
    [rav4] = spider.parse_detail(response, card=rav4_card)
    assert rav4.vin == "2T3P1RFV4SW087712" and rav4.drivetrain == "AWD"  # from the page
    assert crawler.stats.get_value("forecourt/detail_fallback_to_card") == 1


def test_a_home_page_leads_to_its_all_inventory_results_when_it_links_to_them():
    from spiders.dealereprocess import Spider

    spider = Spider(url=BASE + "/")
    links = ("/search/new-toyota-cedar-hollow-or/?tp=new", "/search/used-cedar-hollow-or/?tp=used",
             "/search/all-cedar-hollow-or/?s:pr=1&tp=all", "/search/", "/auto/x/10482231/",
             "https://elsewhere.example/search/all-x/?tp=all", "/service/")
    home = "".join(f"<a href='{href}'>x</a>" for href in links)
    assert spider.inventory_urls(home, BASE + "/") == [
        BASE + "/search/all-cedar-hollow-or/?s:pr=1&tp=all"]
    # without an all-inventory link: the new and used results
    assert spider.inventory_urls(home.replace("tp=all", "tp=certified"), BASE + "/") == [
        BASE + "/search/new-toyota-cedar-hollow-or/?tp=new",
        BASE + "/search/used-cedar-hollow-or/?tp=used",
        BASE + "/search/all-cedar-hollow-or/?s:pr=1&tp=certified"]
