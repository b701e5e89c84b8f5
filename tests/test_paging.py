"""When a redirect of a later results page is only the site naming the same page its own way
(pure URL logic, crawler/paging.py; the crawls are in
tests/integration/test_crawl_page_completeness.py)."""
from __future__ import annotations

import pytest

from crawler.paging import PAGER_URL, place, renamed_later_page, same_numbered_page, same_url

D = "http://dealer.example"


@pytest.mark.parametrize("asked, final", [
    (f"{D}/inventory?start=20", f"{D}/inventory?page=2"),
    (f"{D}/inventory/?offset=40", f"{D}/inventory/?pg=3"),
    (f"{D}/used/page/2/", f"{D}/used/?page=2"),
    (f"{D}/used/?page=2", f"{D}/used/page/2/"),
    (f"{D}/inventory?page=2", f"{D}/inventory/?page=2"),
    (f"{D}/inventory/?page=2", "https://www.dealer.example/inventory/?page=2"),
    (f"{D}/inventory/index.html?p=3", f"{D}/inventory/?p=3"),
    (f"{D}/Inventory/?page=2", f"{D}/inventory/?page=2"),
    (f"{D}/inventory/?page=2&make=honda&year=2021",
     f"{D}/inventory/?year=2021&make=honda&page=2"),
    (f"{D}/inventory/?page=2", f"{D}/inventory/?page=2&sort=price"),
    (f"{D}/inventory/?start=20", f"{D}/inventory/?page=2&sortBy=price&dir=asc"),
    (f"{D}/inventory/?page=2&order=new", f"{D}/inventory/?page=2&order=price"),
    (f"{D}/inventory/?page=2&utm_source=mail", f"{D}/inventory/?page=2"),
], ids=["offset-to-page", "offset-to-pg", "path-to-query", "query-to-path", "slash",
        "https-and-www", "index-html", "path-case", "params-reordered", "sort-added",
        "sort-and-direction-added", "order-changed", "tracking-dropped"])
def test_the_same_later_page_under_the_sites_own_url_is_a_renaming(asked, final):
    assert renamed_later_page(asked, final)


@pytest.mark.parametrize("asked, final", [
    (f"{D}/inventory/?page=2", f"{D}/"),  # the home page
    (f"{D}/inventory/?page=2", f"{D}/inventory/"),  # the listing's first page
    (f"{D}/inventory/?start=20", f"{D}/inventory/?page=1"),
    (f"{D}/inventory/?page=2", f"{D}/inventory/?start=0"),
    (f"{D}/inventory/?page=3", f"{D}/inventory/?page=2"),  # another page of it
    (f"{D}/used/page/3/", f"{D}/used/?page=2"),
    (f"{D}/inventory/?start=20", f"{D}/inventory/?offset=40"),
    (f"{D}/inventory/?page=2", f"{D}/consent?return=%2Finventory%2F%3Fpage%3D2"),
    (f"{D}/inventory/?page=2", f"{D}/consent?page=2"),  # another path
    (f"{D}/used/?page=2", f"{D}/new/?page=2"),
    (f"{D}/inventory/?page=2", "http://other.example/inventory/?page=2"),  # another host
    (f"{D}/inventory/?page=2", f"{D}:8080/inventory/?page=2"),  # another server
    (f"{D}/inventory/?make=honda&page=2", f"{D}/inventory/?page=2"),  # a filter dropped
    (f"{D}/inventory/?page=2", f"{D}/inventory/?page=2&make=honda"),  # ... added
    (f"{D}/inventory/?make=honda&page=2", f"{D}/inventory/?make=kia&page=2"),  # changed
    (f"{D}/inventory/?start=20", f"{D}/inventory/?page=2&per_page=50"),  # a page size
    (f"{D}/inventory/?page=2", f"{D}/inventory/?page=2&start=40"),  # numbered twice
    (f"{D}/inventory/?page=2", f"{D}/inventory/?page=two"),
    (f"{D}/inventory/", f"{D}/inventory/?page=2"),  # not a later page that was asked
], ids=["home-page", "listing-root", "page-one", "offset-zero", "another-page",
        "another-page-path-form", "another-offset", "consent-wall", "another-path",
        "another-listing", "another-host", "another-port", "filter-dropped", "filter-added",
        "filter-changed", "page-size-added", "numbered-twice", "not-a-number",
        "page-one-asked"])
def test_anything_else_is_not_a_renaming(asked, final):
    assert not renamed_later_page(asked, final)


@pytest.mark.parametrize("url", [f"{D}/inventory/?page=2", f"{D}/x?pg=13", f"{D}/x?start=1",
                                 f"{D}/used/page/2/", f"{D}/x?sort=new&pageNumber=4"])
def test_pager_url_and_place_agree_on_later_pages(url):
    """The two readings of a results URL agree on what a later page is."""
    found = place(url)
    assert PAGER_URL.search(url)
    assert found.kind and (found.number >= 2 or found.kind == "offset")


@pytest.mark.parametrize("asked, final, same", [
    (f"{D}/used/page/2/", f"{D}/used/?page=2", True),
    (f"{D}/inventory/?page=2", "http://www.dealer.example/inventory?page=2", True),
    (f"{D}/inventory/?start=20", f"{D}/inventory/?page=2", False),  # renamed, numbered anew
    (f"{D}/inventory/?page=2", f"{D}/inventory/?page=3", False),
])
def test_the_same_numbered_page_keeps_its_number_as_it_was(asked, final, same):
    assert same_numbered_page(asked, final) is same


@pytest.mark.parametrize("asked, final, same", [
    (f"{D}/inventory/?page=2", f"{D}/inventory/?page=2#results", True),
    (f"{D}/inventory/?model=C 300&page=2", f"{D}/inventory/?model=C%20300&page=2", True),
    (f"{D}/inventory/?model=O'Neil&page=2", f"{D}/inventory/?model=O%27Neil&page=2", True),
    ("http://Dealer.Example:80/inventory/?page=2&make=kia",
     f"{D}/inventory/?make=kia&page=2", True),
    ("https://dealer.example:443", "https://dealer.example/", True),
    (f"{D}/inventory/?page=2", f"{D}/inventory?page=2", False),  # a redirect, if a renaming
    (f"{D}/inventory/?page=2", f"{D}/inventory/?page=2&utm_source=site", False),
    (f"{D}:8080/inventory/?page=2", f"{D}/inventory/?page=2", False),
    (f"{D}/Inventory/?page=2", f"{D}/inventory/?page=2", False),
])
def test_the_same_url_written_another_way_is_no_redirect(asked, final, same):
    """What a browser writes differently for the address it was given (crawler/paging.py,
    `same_url`); anything else is judged as a redirect (`renamed_later_page`)."""
    assert same_url(asked, final) is same
