"""DealerVenom extraction details beyond the saved pages: pager, scoping, fallbacks."""

from __future__ import annotations

import json
from html import escape
from pathlib import Path

from spiders.dealervenom import extract
from spiders.extract import dealervenom as dv

SITE = Path(__file__).resolve().parents[2] / "fixtures" / "sites" / "dealervenom"
BASE = "https://www.junipervalleykia.example"


def test_next_page_is_the_chevron_link_and_absent_on_the_last_page():
    first = (SITE / "new-vehicles" / "index.html").read_text()
    last = (SITE / "new-vehicles__pg-2.html").read_text()
    assert dv.next_page(first, BASE + "/new-vehicles/") == BASE + "/new-vehicles/?pg=2"
    assert dv.next_page(last, BASE + "/new-vehicles/?pg=2") is None


def test_similar_vehicle_cards_on_a_detail_page_are_not_returned():
    html = (SITE / "cases" / "vdp-sale-pending-in-transit.html").read_text()
    assert "5XYK33DF1SG999001" in html
    assert [i.vin for i in extract(html, BASE + "/vehicle/x/")] == ["KNDNB5H36S6154420"]


def test_redirect_maps_and_analytics_vins_are_not_vehicles():
    html = (SITE / "cases" / "search-page-1-with-traps.html").read_text()
    vins = {i.vin for i in extract(html, BASE + "/new-vehicles/")}
    assert "KNDJN2A28H7000123" in html and "KNDJN2A28H7000123" not in vins
    assert len(vins) == 3


def test_detail_page_with_broken_data_vehicle_falls_back_to_json_ld():
    ld = {"@context": "https://schema.org", "@type": "Car", "vehicleIdentificationNumber":
          "KNDJ23AU2N7801562", "brand": "Kia", "model": "Soul", "vehicleModelDate": "2022",
          "offers": {"price": "17995", "priceCurrency": "USD"}}
    html = (f"<html><head><script type='application/ld+json'>{json.dumps(ld)}</script></head>"
            f"<body><main class='vdp' data-vehicle='{{not json'><div class='in-stock-vehicle'>"
            f"</div></main></body></html>")
    [item] = extract(html, BASE + "/vehicle/Used/2022/Kia/Soul/KNDJ23AU2N7801562/")
    assert item.vin == "KNDJ23AU2N7801562" and item.prices == {"price": "17995"}
    assert item.availability == "In Stock"


def test_displayed_price_and_msrp_come_from_data_vehicle_when_no_price_stack():
    data = {"vin": "5XYK53DF0SG201145", "year": 2025, "make": "Kia", "model": "Sportage",
            "msrp": 33290, "displayedPrice": 31990, "status": "New"}
    html = f"<html><body><main data-vehicle=\"{escape(json.dumps(data))}\"></main></body></html>"
    [item] = extract(html, BASE + "/vehicle/x/")
    assert item.prices == {"msrp": 33290, "final": 31990} and item.availability is None


def test_javascript_spider_follows_detail_pages_only_with_extract_as():
    from spiders.javascript import Spider

    spider = Spider(url=BASE + "/new-vehicles/")
    html = (SITE / "new-vehicles" / "index.html").read_text()
    plain = spider.extract_page(html, BASE + "/new-vehicles/")  # the data-vin step reads them
    assert [c.vin for c in plain][:1] == ["5XYK53DF0SG201145"]
    as_dv = Spider(url=BASE + "/new-vehicles/", dealer_settings={"extract_as": "dealervenom"})
    cards = as_dv.extract_page(html, BASE + "/new-vehicles/")
    assert [c.vin for c in cards][:1] == ["5XYK53DF0SG201145"]
    assert as_dv.detail_url(cards[0], html, BASE + "/new-vehicles/") == cards[0].url
    assert spider.detail_url(cards[0], html, BASE + "/new-vehicles/") is None
    assert as_dv.next_page_url(html, BASE + "/new-vehicles/") == BASE + "/new-vehicles/?pg=2"



def test_featured_cards_on_the_site_root_are_not_taken_for_the_inventory():
    import scrapy

    from tests.spiders.test_chain import response, spider_of

    spider = spider_of("dealervenom", BASE + "/")
    cards_page = (SITE / "new-vehicles" / "index.html").read_text()
    home = list(spider.parse_listing(response(BASE + "/", cards_page), first=True))
    assert all(isinstance(r, scrapy.Request) for r in home)
    assert [r.url for r in home][:2] == [BASE + "/new-vehicles/", BASE + "/used-vehicles/"]
    # the same cards on a results page given as the dealer URL are its inventory
    results = list(spider.parse_listing(response(BASE + "/new-vehicles/", cards_page),
                                        first=True))
    assert not any(r.url.endswith("/used-vehicles/") for r in results
                   if isinstance(r, scrapy.Request))
    assert any(r.url.startswith(BASE + "/vehicle/") for r in results)
