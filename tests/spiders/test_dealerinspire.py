"""DealerInspire extraction: the index config in the page, search bodies, hits, pages."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qs

from spiders.extract import dealerinspire

SITE = Path(__file__).resolve().parents[2] / "fixtures" / "sites" / "dealerinspire"
PAGE = (SITE / "cases" / "inventory-page-with-vin-traps.html").read_text()


def test_config_in_the_page_names_app_key_index_and_page_size():
    config = dealerinspire.index_config(PAGE)
    assert config.app_id == "BH7TQ4MZ2C"
    assert config.api_key == "5c2e9f1a7b3d4e6f8091a2b3c4d5e6f7"
    assert config.index == "baysideharbortoyota_production_inventory_low_to_high"  # sort index
    assert config.hits_per_page == 10
    assert config.query_url == ("https://bh7tq4mz2c-dsn.algolia.net/1/indexes/"
                                "baysideharbortoyota_production_inventory_low_to_high/query")
    assert config.headers()["X-Algolia-API-Key"] == config.api_key


def test_config_may_name_its_own_search_host():
    page = PAGE.replace('"indexName":', '"hosts": ["http://127.0.0.1:8123"], "indexName":')
    assert dealerinspire.index_config(page).query_url.startswith("http://127.0.0.1:8123/1/")


def test_older_config_variable_and_refinements_become_facet_filters():
    page = ('<script>var mvnAlgSettings = {"appId": "A1", "apiKeySearch": "k", '
            '"inventoryIndex": "dealer_inv"};\nvar inventoryLightningSettings = '
            '{"refinements": {"type": ["New"], "model": ["RAV4", "RAV4 Hybrid"]}};</script>')
    config = dealerinspire.index_config(page)
    assert config.index == "dealer_inv" and config.hits_per_page == 20
    params = parse_qs(json.loads(config.body(3))["params"])
    assert params["page"] == ["3"] and params["hitsPerPage"] == ["20"]
    assert json.loads(params["facetFilters"][0]) == [["type:New"],
                                                     ["model:RAV4", "model:RAV4 Hybrid"]]


def test_page_without_the_config_has_no_index():
    assert dealerinspire.index_config("<script>var algoliaConfig = {\"appId\": \"x\"};</script>") \
        is None


def test_hits_become_vehicles_and_pages_follow_to_nbpages():
    first = (SITE / "algolia" / "page-0.json").read_text()
    items = dealerinspire.extract(first, "https://x.example/q")
    assert len(items) == 10
    camry = next(i for i in items if str(i.vin).upper() == "4T1DAACK0SU020418")
    assert camry.prices == {"our_price": 30995, "msrp": 31795}
    assert dealerinspire.next_page(json.loads(first)) == 1
    last = json.loads((SITE / "algolia" / "page-2.json").read_text())
    assert dealerinspire.next_page(last) is None
    assert dealerinspire.declared_total(last) == 22
    assert dealerinspire.stopped_early(last) is None


def test_an_empty_page_within_nbpages_is_paging_stopped_early():
    middle = {"hits": [], "page": 1, "nbPages": 3, "nbHits": 22}
    assert dealerinspire.next_page(middle) is None
    assert dealerinspire.stopped_early(middle) == "page 2 of 3 had no hits"
    assert dealerinspire.stopped_early({"hits": [], "page": 0, "nbPages": 0}) is None  # none
    assert dealerinspire.declared_total({"hits": []}) is None


def test_status_labels_become_availability():
    hits = {"hits": [{"vin": "A", "lightning": {"statusLabel": "Build Phase"}},
                     {"vin": "B", "vehicle_status": "In-Transit"},
                     {"vin": "C", "lightning": {"statusLabel": "Sale Pending - In Transit"}}]}
    got = [i.availability for i in dealerinspire.from_api(hits, "u")]
    assert got == ["In Production", "In Transit", "Sale Pending - In Transit"]


def test_multi_query_answers_are_read_too():
    answer = {"results": [{"hits": [{"vin": "JTDADABU2SJ071552"}], "page": 4}]}
    items = dealerinspire.extract(json.dumps(answer), "https://x.example/q")
    assert [i.source for i in items] == ["https://x.example/q#page=4"]


def test_vin_traps_in_the_page_yield_nothing():
    assert "4T1BF1FKXFU000512" in PAGE.upper() and "JTDKARFU1J3041189" in PAGE.upper()
    assert dealerinspire.extract(PAGE, "https://www.baysideharbortoyota.example/inventory/") == []


def test_relative_links_are_on_the_dealer_site_not_the_index_host():
    answer = {"hits": [{"vin": "JTDADABU2SJ071552", "link": "/inventory/new-prius/"}]}
    (item,) = dealerinspire.from_api(answer, "https://a1-dsn.algolia.net/1/indexes/i/query",
                                     "https://www.dealer.example/new-vehicles/")
    assert item.url == "https://www.dealer.example/inventory/new-prius/"


def test_config_written_as_a_plain_js_object_literal_is_read():
    page = ("<script>window.algoliaConfig = {appId: 'QX1', apiKeySearch: 'k2', "
            "indexName: 'dealer_inv',};</script>")
    config = dealerinspire.index_config(page)
    assert (config.app_id, config.api_key, config.index) == ("QX1", "k2", "dealer_inv")
