"""Platform detection from page signals, the chosen path, and `forecourt detect` /
`dealers add` detecting on real HTTP."""

from __future__ import annotations

from pathlib import Path

import pytest

from crawler.db import dealers as dealers_db
from spiders.detect import detect, detect_platform

ROOT = Path(__file__).resolve().parents[2]
SITES = ROOT / "fixtures" / "sites"


def page(rel: str) -> str:
    return (SITES / rel).read_text().replace("{{BASE}}", "https://dealer.example")


@pytest.mark.parametrize("rel, platform, path, detail", [
    ("dealercom/all-inventory/index.htm", "dealercom", "platform", "getInventory API"),
    ("dealercom/index.html", "dealercom", "platform", "/all-inventory/index.htm"),
    ("dealerinspire/inventory/index.html", "dealerinspire", "platform", "search index"),
    ("dealeron/searchall.aspx.html", "dealeron", "platform", "pages ?pt=N"),
    ("dealeron/index.html", "dealeron", "platform", "/searchall.aspx"),
])
def test_platform_pages_are_named_with_their_signals_and_path(rel, platform, path, detail):
    found = detect(page(rel), "https://dealer.example/")
    assert (found.platform, found.spider, found.path) == (platform, platform, path)
    assert detail in found.detail
    assert found.signals


def test_a_page_with_schema_org_vehicles_takes_the_json_ld_path():
    found = detect(page("generic/inventory/new-2024-chevrolet-equinox-3GNAXKEG2RS112233.html"),
                   "https://dealer.example/x")
    assert (found.platform, found.spider, found.path) == (None, "generic", "json-ld")
    assert found.vehicles_on_page == 1


def test_a_page_with_only_card_attributes_takes_the_data_vin_path():
    html = ('<div data-vin="1HGCV1F30RA000001" data-year="2024" data-make="Honda" '
            'data-model="Accord"></div>')
    found = detect(html, "https://dealer.example/")
    assert (found.spider, found.path, found.vehicles_on_page) == ("generic", "data-vin", 1)


def test_an_unknown_page_without_vehicles_is_crawled_through_links():
    found = detect("<html><title>Welcome</title><a href='/inventory/'>Cars</a></html>", "u")
    assert (found.platform, found.spider, found.path) == (None, "generic", "links")


def test_weak_or_tied_signals_name_no_platform():
    assert detect_platform('<a href="/searchnew.aspx">New</a>')[0] is None  # one hint only
    tied = ('<script id="dealeron_tagging_data" type="application/json">{}</script>'
            '<script>fetch("/api/widget/ws-inv-data/getInventory", {})</script>')
    platform, signals = detect_platform(tied)
    assert platform is None and len(signals) == 2  # both shown, neither chosen


def run(*args: str):
    """The CLI in this process (a subprocess per command costs seconds)."""
    from typer.testing import CliRunner

    from crawler.cli import _register, app

    if not app.registered_commands:
        _register()
    return CliRunner().invoke(app, list(args))


def test_detect_command_on_a_saved_page_and_a_url(site):
    result = run("detect", str(SITES / "dealeron" / "cases" / "searchall-page-1.html"))
    assert result.exit_code == 0, result.output
    assert "platform: dealeron" in result.output and "dealeron_tagging_data" in result.output
    base = site("dealerinspire")
    result = run("detect", base + "/inventory/")
    assert result.exit_code == 0, result.output
    assert "dealerinspire" in result.output and base + "/1/indexes/" in result.output


def test_dealers_add_detects_the_platform_or_stores_generic_when_unreachable(db, site):
    base = site("dealerinspire")
    result = run("dealers", "add", "bayside", "--name", "Bayside", "--url", base + "/inventory/")
    assert result.exit_code == 0, result.output
    assert "detected platform: dealerinspire" in result.output
    result = run("dealers", "add", "gone", "--name", "Gone", "--url", base + "/no-such-page/")
    assert result.exit_code == 0, result.output
    assert "platform not detected" in result.output and "generic" in result.output
    rows = db.execute("SELECT slug, platform FROM dealerships ORDER BY slug").fetchall()
    assert [(r["slug"], r["platform"]) for r in rows] == [("bayside", "dealerinspire"),
                                                          ("gone", None)]


def test_dealers_set_url_detects_the_new_sites_platform_and_keeps_it_when_unreachable(db, site):
    base = site("dealerinspire")
    assert run("dealers", "add", "moved", "--name", "Moved", "--url", "http://127.0.0.1:9/",
               "--platform", "dealeron").exit_code == 0
    result = run("dealers", "set", "moved", "--url", base + "/inventory/")
    assert result.exit_code == 0, result.output
    assert "detected platform: dealerinspire" in result.output
    assert "updated dealership moved: platform, website" in result.output
    assert dealers_db.get(db, "moved").platform == "dealerinspire"
    result = run("dealers", "set", "moved", "--url", base + "/no-such-page/")
    assert result.exit_code == 0, result.output
    assert "platform kept (dealerinspire)" in result.output
    moved = dealers_db.get(db, "moved")
    assert (moved.platform, moved.website_url) == ("dealerinspire", base + "/no-such-page/")
    # --platform given: taken as given, nothing fetched
    result = run("dealers", "set", "moved", "--url", base + "/inventory/", "--platform",
                 "generic")
    assert "detected platform" not in result.output
    assert dealers_db.get(db, "moved").platform == "generic"


def test_a_script_shell_without_vehicles_takes_the_javascript_path():
    shell = ("<html><title>Inventory</title><div id='inventory-app'><p class='loading'>"
             "Loading vehicles&hellip;</p></div><noscript>Please enable JavaScript to see our "
             "inventory.</noscript></html>")
    found = detect(shell, "https://dealer.example/inventory/")
    assert (found.platform, found.spider, found.path) == (None, "javascript", "javascript")


@pytest.mark.parametrize("html, platform", [
    ('<script src="/dep/js/dep_require.js"></script><a href="/search/all-x/?s:pr=1">All</a>',
     "dealereprocess"),
    ('<link rel="stylesheet" href="/wp-content/themes/dealervenom/style.css">', "dealervenom"),
    ('<script src="https://cdn.secureoffersites.com/apollo/app.js"></script>'
     '<a href="/viewdetails/new/1n4bl4dw0sn301188/2025-nissan-altima">Altima</a>',
     "teamvelocity"),
])
def test_html_platforms_are_named_from_their_hosts_and_paths(html, platform):
    assert detect_platform(html)[0] == platform


def test_a_bot_challenge_names_no_platform_and_says_so():
    challenge = ("<html><head><title>Just a moment...</title></head><body>"
                 "<div id='cf-challenge'>Checking your browser</div></body></html>")
    found = detect(challenge, "https://dealer.example/")
    assert (found.platform, found.page_kind) == (None, "blocked")
    assert "bot challenge" in found.detail


def test_a_dealervenom_results_page_drawn_by_scripts_keeps_its_platform_and_is_rendered():
    url = "https://www.junipervalleykia.example/certified-vehicles/"
    found = detect(page("dealervenom/certified-vehicles/index.html"), url)
    assert (found.platform, found.spider, found.path) == ("dealervenom", "dealervenom",
                                                          "javascript")
    assert found.renders and found.vehicles_on_page == 0 and found.page_kind == "other"
    assert "rendered in headless Chromium" in found.detail
    assert "detail pages and APIs over plain HTTP" in found.detail
    assert "home page" not in found.detail
    served = detect(page("dealervenom/new-vehicles/index.html"), url)  # cards in the HTML
    assert (served.path, served.renders, served.vehicles_on_page) == ("platform", False, 3)


def test_platform_home_pages_lead_to_their_results_page_before_any_rendering():
    # Dealer.com and DealerOn spiders move from a home page to their results page first
    for rel in ("dealercom/index.html", "dealeron/index.html"):
        assert not detect(page(rel), "https://dealer.example/").renders
    home = detect(page("dealervenom/index.html"), "https://dealer.example/")
    assert home.renders and "home page" in home.detail  # a card platform reads what it gets


def test_a_generic_results_page_with_no_vehicles_or_links_is_rendered_by_the_generic_spider():
    found = detect("<html><title>Used inventory</title><div id='srp'></div></html>",
                   "https://dealer.example/used-inventory/")
    assert (found.platform, found.spider, found.path, found.renders) == (
        None, "generic", "javascript", True)


def test_detect_and_dealers_add_say_a_script_drawn_results_page_will_be_rendered(db, site):
    result = run("detect", str(SITES / "dealervenom" / "certified-vehicles" / "index.html"),
                 "--url", "https://www.junipervalleykia.example/certified-vehicles/")
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.replace("│", " ").split())
    assert "platform: dealervenom" in text and "path javascript: no vehicles" in text
    assert "browser yes: pages are rendered in headless Chromium" in text
    base = site("dealervenom")
    result = run("dealers", "add", "juniper", "--name", "Juniper Valley Kia",
                 "--url", base + "/certified-vehicles/")
    assert result.exit_code == 0, result.output
    assert "detected platform: dealervenom; crawl path: javascript (dealervenom spider, pages " \
           "rendered in the headless browser)" in " ".join(result.output.split())
    row = db.execute("SELECT platform FROM dealerships WHERE slug = 'juniper'").fetchone()
    assert row["platform"] == "dealervenom"  # the crawl renders by itself: no settings needed
