"""Page classification from status, text and vehicles found (pure; saved pages in
fixtures/sites/*/cases are checked by test_saved_pages)."""

from __future__ import annotations

from pathlib import Path

import pytest

from crawler import pages

SITES = Path(__file__).resolve().parents[2] / "fixtures" / "sites"


def page(title: str = "Inventory", body: str = "") -> str:
    return f"<html><head><title>{title}</title></head><body>{body}</body></html>"


@pytest.mark.parametrize("status", [401, 403, 429])
def test_refusing_statuses_are_blocked_whatever_the_body(status):
    assert pages.classify(status, page(), 0) == pages.BLOCKED
    assert pages.classify(status, "", 3) == pages.BLOCKED


@pytest.mark.parametrize("body", [
    "<script>var dd={'rt':'c','cid':'x','host':'geo.captcha-delivery.com'}</script>",
    "<script src='https://ct.captcha-delivery.com/c.js'></script>",
    "<div class='cf-turnstile'></div>",
    "<script>window._cf_chl_opt={cType:'managed'}</script>",
    "<p>Checking if the site connection is secure</p>",
    "<div id='px-captcha'></div>",
    "<h1>Pardon Our Interruption</h1>",
])
def test_bot_challenges_served_with_200_or_503_are_blocked(body):
    assert pages.classify(200, page("x", body), 0) == pages.BLOCKED
    assert pages.classify(503, page("x", body), 0) == pages.BLOCKED


def test_cloudflare_interstitial_title_is_blocked():
    assert pages.classify(503, page("Just a moment..."), 0) == pages.BLOCKED
    assert pages.classify(200, page("Attention Required! | Cloudflare"), 0) == pages.BLOCKED


def test_a_page_with_vehicles_is_inventory_even_if_it_mentions_a_captcha():
    body = "<form><div class='g-recaptcha'></div>verify you are human to send</form>"
    assert pages.classify(200, page("Used cars", body), 12) == pages.INVENTORY


@pytest.mark.parametrize("title,body", [
    ("Page Not Found - Cedar Hollow Toyota", ""),
    ("Cedar Hollow Toyota", "<h1>404 - Page Not Found</h1>"),
    ("Juniper Valley Kia", "<h1>Oops! That page can’t be found.</h1>"),
    ("2019 Honda Accord", "<p>This vehicle is no longer available.</p>"),
    ("Dealer", "<p>The page you requested could not be found.</p>"),
])
def test_soft_404s_served_with_200_are_not_found(title, body):
    assert pages.classify(200, page(title, body), 0) == pages.NOT_FOUND


def test_http_404_and_410_are_not_found():
    assert pages.classify(404, page(), 0) == pages.NOT_FOUND
    assert pages.classify(410, page(), 0) == pages.NOT_FOUND


def test_not_found_words_in_a_listing_with_vehicles_do_not_matter():
    body = "<p>Can't find what you want? Tell us.</p><h1>404 vehicles in stock</h1>"
    assert pages.classify(200, page("Inventory", body), 25) == pages.INVENTORY


@pytest.mark.parametrize("body", [
    "<div class='ais-Stats'>0 vehicles</div>",
    "<p>No vehicles match your search.</p>",
    "<p>We couldn't find any vehicles matching your search.</p>",
    "<span class=\"srp_carbon_results__count--digits\">0</span> Vehicles",
    "<div>Results: 0 Vehicles</div>",
    "<p>There are currently no vehicles in this category.</p>",
])
def test_results_pages_saying_they_are_empty_are_empty(body):
    assert pages.classify(200, page("New inventory", body), 0) == pages.EMPTY


def test_ten_vehicles_is_not_zero_vehicles():
    assert pages.classify(200, page("New", "<p>10 vehicles</p>"), 0) == pages.OTHER


def test_a_page_without_vehicles_or_signals_is_other():
    assert pages.classify(200, page("About us", "<p>Family owned since 1962.</p>"), 0) \
        == pages.OTHER


def test_every_kind_has_a_saved_case_in_the_platform_fixtures():
    kinds = set()
    import json

    for expected in SITES.glob("*/cases/*.json"):
        kinds.add(json.loads(expected.read_text())["classification"])
    assert {pages.INVENTORY, pages.EMPTY, pages.NOT_FOUND, pages.BLOCKED} <= kinds
