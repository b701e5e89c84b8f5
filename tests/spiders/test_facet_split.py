"""A DealerInspire (Algolia) search larger than paging reaches is read in parts, one per facet
value (spiders/facet_split.py): when to split, by which facet, how the parts are asked, and
how their totals add up. Pure decisions, without a crawl (tests/integration/
test_crawl_facet_split.py crawls a 1,350-vehicle index for real)."""

from __future__ import annotations

import json
from types import SimpleNamespace
from urllib.parse import parse_qs

from scrapy.http import Request, TextResponse
from scrapy.utils.test import get_crawler

from spiders import facet_split, totals
from spiders.dealerinspire import Spider
from spiders.extract.dealerinspire import IndexConfig

CONFIG = IndexConfig(app_id="A1", api_key="k", index="dealer_inv",
                     host="https://a1-dsn.algolia.net", hits_per_page=100,
                     refinements={"type": ["New", "Used"]})


def params(body: str) -> dict:
    return {k: v[0] for k, v in parse_qs(json.loads(body)["params"]).items()}


def test_a_search_beyond_the_paging_limit_is_told_by_nbhits_against_nbpages():
    assert facet_split.beyond_paging({"nbHits": 1350, "nbPages": 10, "hitsPerPage": 100},
                                     100) == 1000
    # 24 a page: 42 pages hold 1,008 places, but Algolia still stops at the 1,000th hit
    assert facet_split.beyond_paging({"nbHits": 1005, "nbPages": 42, "hitsPerPage": 24},
                                     24) == 1000
    # an index whose owner set paginationLimitedTo 500
    assert facet_split.beyond_paging({"nbHits": 600, "nbPages": 25}, 20) == 500
    assert facet_split.beyond_paging({"nbHits": 1000, "nbPages": 10, "hitsPerPage": 100},
                                     100) is None
    assert facet_split.beyond_paging({"nbHits": 22, "nbPages": 3, "hitsPerPage": 10}, 10) \
        is None
    assert facet_split.beyond_paging({"hits": []}, 20) is None


def test_the_first_facet_that_covers_every_hit_and_splits_is_chosen():
    counts = {"type": {"New": 1350},  # one value: no split
              "make": {"Toyota": 1200, "Honda": 140},  # 10 hits without a make
              "model": {"RAV4": 700, "Camry": 650}}
    split = facet_split.choose(counts, 1350, ("type", "make", "model", "year"))
    assert split == facet_split.Split("model", {"RAV4": 700, "Camry": 650})


def test_no_covering_facet_splits_by_the_one_covering_most_and_names_the_numbers():
    counts = {"make": {"Toyota": 1200, "Honda": 140}, "model": {"RAV4": 700, "Camry": 600},
              "year": {"2024": 1362}}
    split = facet_split.choose(counts, 1362, ("make", "model", "year"))
    assert split.attribute == "make" and split.counts == counts["make"]
    assert split.problem == ("no facet covers all its 1,362 hits (hits with a value: make "
                             "1,340, model 1,300, year 1,362); split by make, which leaves "
                             "22 hits in no part")


def test_no_facet_with_two_values_is_no_split():
    split = facet_split.choose({"type": {"New": 1350}}, 1350, ("type", "make"))
    assert split.attribute is None
    assert split.problem == ("no facet of type, make splits its 1,350 hits into parts "
                             "(hits with a value: type 1,350)")
    assert facet_split.choose({}, 1350, ()).problem == \
        "no facet left splits its 1,350 hits into parts"


def test_facet_counts_are_read_as_integers_and_empty_values_dropped():
    data = {"facets": {"year": {"2024": 3, "2025": "2", "1999": 0, "x": "many"}, "bad": [1]}}
    assert facet_split.facet_counts(data) == {"year": {"2024": 3, "2025": 2}}
    assert facet_split.facet_counts({"hits": []}) == {}


def test_a_part_of_the_search_ands_its_facet_value_to_the_dealer_refinements():
    part = params(CONFIG.body(2, (("type", "New"), ("model", "RAV4"))))
    assert part["page"] == "2" and part["hitsPerPage"] == "100"
    assert json.loads(part["facetFilters"]) == [["type:New", "type:Used"], ["type:New"],
                                                ["model:RAV4"]]
    counting = params(CONFIG.facets_body((("type", "New"),), ("make", "model")))
    assert counting["hitsPerPage"] == "0" and json.loads(counting["facets"]) == ["make",
                                                                                 "model"]
    assert counting["maxValuesPerFacet"] == "1000"
    assert json.loads(counting["facetFilters"])[-1] == ["type:New"]
    # a value starting with "-" would negate the filter: it is escaped
    assert json.loads(params(CONFIG.body(0, (("trim", "-S"),)))["facetFilters"])[-1] == \
        ["trim:\\-S"]


def test_hits_of_a_part_count_in_the_search_it_is_part_of():
    run = SimpleNamespace(problems=[], incomplete=False)
    tally = totals.Totals(run)
    whole = tally.search("q", "index", "nbHits")
    new = tally.search("q?new", "index narrowed to type:New", "nbHits", whole)
    used = tally.search("q?used", "index narrowed to type:Used", "nbHits", whole)
    tally.declare(whole, 5)
    tally.declare(new, 3)
    tally.declare(used, 2)
    tally.saw(whole, ["objectID:1"])  # page 0 of the whole search
    tally.saw(new, ["objectID:1", "objectID:2", "objectID:3"])
    tally.saw(used, ["objectID:4"])  # one used car never read
    tally.settle()
    assert run.incomplete
    assert run.problems == [
        "index listed 4 of the 5 vehicles its nbHits declared",
        "index narrowed to type:Used listed 1 of the 2 vehicles its nbHits declared"]


def _spider():
    crawler = get_crawler(Spider)
    spider = Spider.from_crawler(crawler, url="https://www.dealer.example/inventory/")
    crawler.stats.open_spider()
    return spider


def _answer(request: Request, data: dict) -> TextResponse:
    return TextResponse(request.url, body=json.dumps(data).encode(), encoding="utf-8",
                        request=request)


def test_a_first_page_beyond_the_paging_limit_asks_facet_counts_instead_of_paging_on():
    spider = _spider()
    first = spider.index_request(CONFIG, 0)
    hits = [{"objectID": str(n), "vin": f"VIN{n}"} for n in range(100)]
    out = list(spider.parse_index(_answer(first, {"hits": hits, "nbHits": 1350, "page": 0,
                                                  "nbPages": 10, "hitsPerPage": 100}),
                                  **first.cb_kwargs))
    items, [ask] = out[:-1], out[-1:]
    assert len(items) == 100 and ask.callback == spider.parse_facets
    assert json.loads(params(ask.body.decode())["facets"]) == list(facet_split.FACETS)
    counts = {"type": {"New": 1080, "Used": 270}, "make": {"Toyota": 1350}}
    parts = list(spider.parse_facets(_answer(ask, {"hits": [], "nbHits": 1350,
                                                   "facets": counts}), **ask.cb_kwargs))
    assert [p.cb_kwargs["narrowed"] for p in parts] == [(("type", "New"),), (("type", "Used"),)]
    assert not spider.problems and not spider.incomplete
    # page 0 of a part gives hits already read: counted for the part, not yielded again
    new = parts[0]
    again = list(spider.parse_index(_answer(new, {"hits": hits[:10], "nbHits": 1080, "page": 0,
                                                  "nbPages": 10, "hitsPerPage": 100}),
                                    **new.cb_kwargs))
    assert [r.callback for r in again] == [spider.parse_facets]  # New is split further
    assert "type" not in json.loads(params(again[0].body.decode())["facets"])
    assert len(spider.search_of(CONFIG, (("type", "New"),)).seen) == 10


def test_a_search_no_facet_splits_is_paged_to_its_limit_and_the_run_is_partial():
    spider = _spider()
    ask = spider.facets_request(CONFIG, (), 1000)
    [page_1] = spider.parse_facets(_answer(ask, {"hits": [], "nbHits": 1350,
                                                 "facets": {"type": {"New": 1350}}}),
                                   **ask.cb_kwargs)
    assert page_1.cb_kwargs["page"] == 1 and page_1.callback == spider.parse_index
    assert spider.incomplete
    assert spider.problems == [
        "DealerInspire search index dealer_inv declares 1,350 vehicles (nbHits) but paging "
        "reaches only 1,000, and no facet of type, make, model, year, trim, body, "
        "ext_color_generic splits its 1,350 hits into parts (hits with a value: type 1,350)"]
