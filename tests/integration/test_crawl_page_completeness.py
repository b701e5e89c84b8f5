"""Real crawls of fixture sites on 127.0.0.1: pages that answer without all they should hold
(an error page served with 200, a page cut short, a results page that is another page again)
leave the run incomplete and remove nothing, and say which page and what happened; ordinary
pages that merely look odd (valid HTML5 without </body></html>, links that only look like
vehicle pages, a sold car's page a stale sitemap still lists) do not.

Each of the tests of a fault first crawls the whole site (the baseline), then breaks the site
the way real sites break and crawls again (first written as review tests; each failed on the
code before its fix).
"""

from __future__ import annotations

import json
import re

import pytest

from crawler.db import dealers as dealers_db
from tests.crawling import active_vins, copy_site, crawl

pytestmark = pytest.mark.integration

GENERIC_VINS = 10  # fixtures/sites/generic: ten vehicles with VINs (and a Soul without one)
CIVIC_VIN = "19XFC2F7XME104512"
CIVIC = f"used-2021-honda-civic-{CIVIC_VIN}.html"
PAGE_TWO_VIN = "5XXG64J27SG303377"  # dealervenom: listed on /new-vehicles/?pg=2 only


def reasons(job) -> str:
    return " | ".join(str(r) for r in (job.report or {}).get("reasons") or []) \
        + " | " + str(job.error or "")


def assert_nothing_removed(db, job, dealer_id: int, before: set[str], *said: str) -> None:
    lost = before - active_vins(db, dealer_id)
    assert not lost and job.counters.get("removed", 0) == 0, (
        f"run {job.state}/{job.verdict} removed still-listed vehicles {sorted(lost)}; "
        f"report reasons: {(job.report or {}).get('reasons')}")
    assert job.state != "succeeded", "a run that missed listed vehicles was called complete"
    for words in said:
        assert re.search(words, reasons(job)), f"{words!r} not in the run's problems: " \
                                               f"{reasons(job)}"


def generic(db, site, tmp_path):
    root = copy_site(tmp_path, "generic")
    base = site(root)
    dealer = dealers_db.create(db, slug="maple", name="Maple", website_url=base + "/inventory/")
    job = crawl(db, dealer.id)
    assert job.state == "succeeded", job.error
    before = active_vins(db, dealer.id)
    assert len(before) == GENERIC_VINS
    return root, dealer, before


def dealervenom(db, site, tmp_path):
    root = copy_site(tmp_path, "dealervenom")
    base = site(root)
    dealer = dealers_db.create(db, slug="juniper", name="Juniper Valley Kia",
                               website_url=base + "/new-vehicles/", platform="dealervenom",
                               settings={"listing_urls": [base + "/used-vehicles/"]})
    job = crawl(db, dealer.id)
    assert job.state == "succeeded", job.error
    before = active_vins(db, dealer.id)
    assert PAGE_TWO_VIN in before
    return root, dealer, before


# --- generic: a detail page answering 200 without its vehicle ------------------------------

@pytest.mark.parametrize("page, said", [
    # a rate-limit page served with 200 (many WAFs and CDNs do)
    ("<html><head><title>Too Many Requests</title></head><body><h2>Rate limit exceeded"
     "</h2><p>Please slow down and try again in a few minutes.</p></body></html>",
     "error page.*Too Many Requests"),
    # the application server's error page, served with 200
    ("<html><head><title>Service Unavailable</title></head><body><p>The server is "
     "temporarily unable to service your request. Please try again later.</p></body></html>",
     "error page.*Service Unavailable"),
    # a page without any sign of an error, that is not the car either
    ("<!doctype html><html><head><title>Maple Ridge Motors</title></head><body><p>Loading"
     " this vehicle...</p></body></html>", f"shows no vehicle.*{CIVIC_VIN}"),
], ids=["rate-limit-200", "error-page-200", "no-vehicle-200"])
def test_generic_detail_page_answering_200_without_the_vehicle_removes_nothing(
        db, site, tmp_path, page, said):
    """The generic spider reads vehicles only from their detail pages. One that answers 200
    with a rate-limit or error page (not a challenge, not a 404, not "sold") or with nothing
    of its car was dropped silently: the run was complete and healthy (9 of 10 is within the
    count gate) and the car, still listed, was removed."""
    root, dealer, before = generic(db, site, tmp_path)
    (root / "inventory" / CIVIC).write_text(page)  # still linked from listing and sitemap
    job = crawl(db, dealer.id)
    assert_nothing_removed(db, job, dealer.id, before, f"detail page \\S*{CIVIC_VIN}", said)


def test_generic_detail_page_cut_short_removes_nothing(db, site, tmp_path):
    """A detail page served 200 but cut short by the application (a template error mid-page,
    a proxy's buffer limit) before its structured data: the same silent loss."""
    root, dealer, before = generic(db, site, tmp_path)
    page = root / "inventory" / CIVIC
    text = page.read_text()
    page.write_text(text[:text.index("application/ld+json")])
    job = crawl(db, dealer.id)
    assert_nothing_removed(db, job, dealer.id, before,
                           f"detail page \\S*{CIVIC_VIN}\\S* was cut short")


def test_generic_links_that_only_look_like_vehicle_pages_leave_the_run_complete(
        db, site, tmp_path):
    """The generic spider guesses vehicle pages from their links: a specials page with a
    number in its path, or a finance form naming a listed car's VIN, gives no vehicle and
    is no fault of the site."""
    root = copy_site(tmp_path, "generic")
    listing = root / "inventory" / "index.html"
    listing.write_text(listing.read_text().replace(
        '<nav class="pagination">',
        '<a href="/inventory/used-cars-under-15000">Under $15,000</a> '
        f'<a href="/finance/apply?vin={CIVIC_VIN}">Get pre-approved</a><nav class="pagination">'))
    (root / "inventory" / "used-cars-under-15000.html").write_text(
        "<!doctype html><html><head><title>Used cars under $15,000 | Maple Ridge Motors"
        "</title></head><body><h1>Bargains</h1><p>Ask us about our budget cars.</p></body>"
        "</html>")
    (root / "finance").mkdir()
    (root / "finance" / "apply.html").write_text(
        "<!doctype html><html><head><title>Apply for financing | Maple Ridge Motors</title>"
        "</head><body><form><input name=name></form></body></html>")
    base = site(root)
    dealer = dealers_db.create(db, slug="maple", name="Maple", website_url=base + "/inventory/")
    job = crawl(db, dealer.id)
    assert job.state == "succeeded", reasons(job)
    assert len(active_vins(db, dealer.id)) == GENERIC_VINS


def test_valid_html5_pages_without_closing_body_and_html_tags_are_whole(db, site, tmp_path):
    """HTML5 lets a page leave out </body> and </html>; pages that do are not cut short."""
    for name in ("generic", "dealervenom"):
        root = copy_site(tmp_path, name)
        for page in root.rglob("*.html"):
            page.write_text(re.sub(r"</body>\s*</html>\s*$", "\n", page.read_text()))
        assert "</html>" not in (root / "inventory__page-2.html"
                                 if name == "generic" else root / "new-vehicles__pg-2.html"
                                 ).read_text()
        base = site(root)
        url = base + ("/inventory/" if name == "generic" else "/new-vehicles/")
        platform = {} if name == "generic" else {"platform": name}
        dealer = dealers_db.create(db, slug=name, name=name, website_url=url, **platform)
        job = crawl(db, dealer.id)
        assert job.state == "succeeded", f"{name}: {reasons(job)}"
        assert job.counters.get("added", 0) >= 4, job.counters


# --- generic: a sold car's page that a stale sitemap still lists ---------------------------

def _delist(root, vin: str, *, sitemap_too: bool) -> None:
    """The car's page answers 404 and the listing pages no longer show it."""
    next((root / "inventory").glob(f"*{vin}.html")).unlink()
    listings = [root / "inventory" / "index.html", root / "inventory__page-2.html"]
    for listing in listings + ([root / "sitemap-vehicles.xml"] if sitemap_too else []):
        listing.write_text("\n".join(line for line in listing.read_text().splitlines()
                                     if vin not in line))


def test_generic_sold_car_listed_only_in_a_stale_sitemap_is_removed(db, site, tmp_path):
    """A sitemap regenerated once a day still lists a car sold this morning: its page
    answers 404 and no listing page links it. That is a sold car, not a failed page (the
    dealer's runs were all incomplete, so nothing was ever removed)."""
    root, dealer, before = generic(db, site, tmp_path)
    _delist(root, CIVIC_VIN, sitemap_too=False)
    job = crawl(db, dealer.id)
    assert job.state == "succeeded", reasons(job)
    assert active_vins(db, dealer.id) == before - {CIVIC_VIN}
    assert job.counters["removed"] == 1


def test_generic_404_detail_page_still_linked_from_a_listing_page_removes_nothing(
        db, site, tmp_path):
    """A car the listing pages still show whose page answers 404 is a broken page, not a
    sale: the run is incomplete, as before."""
    root, dealer, before = generic(db, site, tmp_path)
    next((root / "inventory").glob(f"*{CIVIC_VIN}.html")).unlink()
    job = crawl(db, dealer.id)
    assert_nothing_removed(db, job, dealer.id, before,
                           f"detail page \\S*{CIVIC_VIN} failed: HTTP 404")


@pytest.mark.parametrize("target", ["{{BASE}}/inventory/", "{{BASE}}/",
                                    "http://127.0.0.2:9/sold"],
                         ids=["to-listing", "to-home-page", "off-site"])
def test_generic_detail_page_still_linked_from_a_listing_page_redirected_removes_nothing(
        db, site, tmp_path, target):
    """A car page 2 still shows whose page answers 302 to the inventory (read already, so
    Scrapy's duplicate filter dropped it silently), to the home page (no vehicle there) or
    off the site (Scrapy's offsite filter dropped it silently):
    the run ended complete and healthy without the car, and removed it, where the same page
    answering 404 removes nothing. A redirect is no more a sale than a 404 is while the
    listing links the car."""
    root, dealer, before = generic(db, site, tmp_path)
    rogue = "used-2022-nissan-rogue-JN8BT3BB7NW300112"
    (root / "routes.json").write_text(json.dumps(
        {f"/inventory/{rogue}": {"redirect": target}}))
    base = site(root)  # routes are read when a server starts
    dealers_db.update(db, dealer.id, website_url=base + "/inventory/")
    job = crawl(db, dealer.id)
    assert_nothing_removed(db, job, dealer.id, before,
                           f"detail page \\S*{rogue} shows no vehicle, although a listing "
                           "page links it")


def test_generic_sold_car_whose_page_redirects_listed_only_in_a_stale_sitemap_is_removed(
        db, site, tmp_path):
    """The sold car's page now redirects to the inventory, and only the day-old sitemap
    lists it: a sale, as with a 404."""
    root, dealer, before = generic(db, site, tmp_path)
    _delist(root, CIVIC_VIN, sitemap_too=False)
    (root / "routes.json").write_text(json.dumps(
        {f"/inventory/{CIVIC.removesuffix('.html')}": {"redirect": "{{BASE}}/inventory/"}}))
    base = site(root)
    dealers_db.update(db, dealer.id, website_url=base + "/inventory/")
    job = crawl(db, dealer.id)
    assert job.state == "succeeded", reasons(job)
    assert active_vins(db, dealer.id) == before - {CIVIC_VIN}


NO_SITEMAP = {"/robots.txt": {"status": 404}}


def generic_nine_and_one(db, site, tmp_path):
    """The generic site with page 1 showing 9 of the 10 cars and page 2 the Rogue (and the
    VIN-less Soul), no sitemap, crawled once: losing page 2 is no count drop."""
    root = copy_site(tmp_path, "generic")
    page_one = root / "inventory" / "index.html"
    moved = "".join(f'<li class="vehicle-card"><a href="/inventory/{car}">{car}</a></li>'
                    for car in ("used-2020-subaru-outback-4S4BTACC1L3210987",
                                "new-2024-hyundai-tucson-KM8JBCD16RU412377",
                                "used-2021-mercedes-benz-c-class-W1KAF4HB3MR023456",
                                "used-2022-jeep-wrangler-1C4HJXDG2NW150034"))
    page_one.write_text(page_one.read_text().replace('<ul class="results">',
                                                     '<ul class="results">' + moved))
    (root / "routes.json").write_text(json.dumps(NO_SITEMAP))
    dealer = dealers_db.create(db, slug="maple", name="Maple",
                               website_url=site(root) + "/inventory/")
    job = crawl(db, dealer.id)
    assert job.state == "succeeded", job.error
    before = active_vins(db, dealer.id)
    assert "JN8BT3BB7NW300112" in before  # the Rogue: on page 2 only
    return root, dealer, before


@pytest.mark.parametrize("target", ["{{BASE}}/", "{{BASE}}/about-us", "http://127.0.0.2:9/consent"],
                         ids=["home-page", "another-page", "off-site"])
def test_generic_later_results_page_redirected_elsewhere_removes_nothing(
        db, site, tmp_path, target):
    """Page 2 answers 302 to the home page, to another page of the site, or off the site (a
    consent wall): the run ended complete and healthy without page 2's car, removing it (off
    the site, Scrapy's offsite filter dropped the redirect with no errback, though a listing
    page that redirects off-site was said to leave the run incomplete)."""
    root, dealer, before = generic_nine_and_one(db, site, tmp_path)
    (root / "routes.json").write_text(json.dumps(
        {**NO_SITEMAP, "/inventory/?page=2": {"redirect": target}}))
    dealers_db.update(db, dealer.id, website_url=site(root) + "/inventory/")
    job = crawl(db, dealer.id)
    assert_nothing_removed(db, job, dealer.id, before,
                           r"results page \S*/inventory/\?page=2 redirected (off the site )?to ")


def test_generic_later_results_page_redirected_to_a_bot_check_is_one_problem(
        db, site, tmp_path):
    """Page 2 answers 302 to a bot check: the run said so twice, "blocked listing page
    <the check>" and "results page <page 2> redirected to <the check>". One page, one line
    naming both."""
    root, dealer, before = generic_nine_and_one(db, site, tmp_path)
    (root / "check").mkdir()
    (root / "check" / "index.html").write_text(
        "<!doctype html><html><head><title>Just a moment...</title></head><body><div "
        "class=cf-turnstile></div></body></html>")
    (root / "routes.json").write_text(json.dumps(
        {**NO_SITEMAP, "/inventory/?page=2": {"redirect": "{{BASE}}/check/"}}))
    base = site(root)
    dealers_db.update(db, dealer.id, website_url=base + "/inventory/")
    job = crawl(db, dealer.id)
    assert_nothing_removed(db, job, dealer.id, before)
    assert [r for r in job.report["reasons"] if "/check/" in r] == [
        f"blocked listing page {base}/inventory/?page=2: redirected to {base}/check/"]


def test_generic_later_results_page_answering_with_page_one_removes_nothing(db, site, tmp_path):
    """`?page=2` answers 200 with page 1 (a search session expired): as on the card
    platforms, a next page showing only the cars of the pages before it is not the page
    asked for; the generic spider took it at its word and removed page 2's car."""
    root, dealer, before = generic_nine_and_one(db, site, tmp_path)
    (root / "inventory__page-2.html").write_text(
        (root / "inventory" / "index.html").read_text())
    job = crawl(db, dealer.id)
    assert_nothing_removed(db, job, dealer.id, before,
                           r"results page \S*/inventory/\?page=2 shows only vehicles of the "
                           r"pages before it")


# --- card platforms: results pages that are not the page asked for, or cut short -----------

def test_results_page_redirected_to_a_page_already_read_removes_nothing(db, site, tmp_path):
    """Page 2 of the new-vehicle results answers 302 to page 1 (a session or filter that
    expired, a site that sends out-of-range pages home). The redirect's target was read
    already, so Scrapy's duplicate filter dropped it silently (no callback, no errback) and
    the run ended complete and healthy without page 2's vehicle, removing it."""
    root, dealer, before = dealervenom(db, site, tmp_path)
    (root / "routes.json").write_text(json.dumps(
        {"/new-vehicles/?pg=2": {"redirect": "{{BASE}}/new-vehicles/"}}))
    base = site(root)  # routes are read when a server starts
    dealers_db.update(db, dealer.id, website_url=base + "/new-vehicles/",
                      settings={"listing_urls": [base + "/used-vehicles/"]})
    job = crawl(db, dealer.id)
    assert_nothing_removed(db, job, dealer.id, before,
                           r"results page \S*/new-vehicles/\?pg=2 redirected to a page already "
                           r"read \(\S*/new-vehicles/\)")


def test_later_results_page_answering_with_page_one_removes_nothing(db, site, tmp_path):
    """`?pg=2` answers 200 with page 1's results (the search session or filter cookie
    expired, and the site ignores the page number). Its cards are page 1's again and its
    pager's "next" is itself, so paging stopped as if at the last page: page 2's vehicle was
    never seen, and removed."""
    root, dealer, before = dealervenom(db, site, tmp_path)
    page_one = (root / "new-vehicles" / "index.html").read_text()
    (root / "new-vehicles__pg-2.html").write_text(page_one.replace(
        'ais-Pagination-item--selected"><a class="ais-Pagination-link" href="/new-vehicles/'
        '?pg=1"', 'ais-Pagination-item--selected"><a class="ais-Pagination-link" href='
        '"/new-vehicles/?pg=2"'))
    job = crawl(db, dealer.id)
    assert_nothing_removed(db, job, dealer.id, before,
                           r"results page \S*/new-vehicles/\?pg=2 shows only vehicles of the "
                           r"pages before it")


def test_results_page_cut_short_removes_nothing(db, site, tmp_path):
    """Page 1 answers 200 but its HTML stops after the first card (an application error
    mid-render; Content-Length matches, so Scrapy sees a whole response). Two of its cards
    and the pager are gone, so page 2 is never asked for either: 2 of 5 new vehicles is a
    drop under the gate's `min_count_drop`, and 3 listed cars were removed."""
    root, dealer, before = dealervenom(db, site, tmp_path)
    page = root / "new-vehicles" / "index.html"
    lines = page.read_text().splitlines(keepends=True)
    page.write_text("".join(lines[:21]))  # up to the end of the first card
    job = crawl(db, dealer.id)
    assert_nothing_removed(db, job, dealer.id, before,
                           r"results page \S*/new-vehicles/ was cut short: its HTML stops "
                           r"inside <div>")


# --- generic: a later results page whose URL the site canonicalises with a redirect --------

JEEP_VIN = "1C4HJXDG2NW150034"  # on page 2 of the generic site only


def generic_paged_by(db, site, tmp_path, link: str, routes: dict, copies: dict[str, str]):
    """The generic site, no sitemap (page 2 is the only way to its cars), page 1 linking
    page 2 as `link`, `routes` (the redirect), and `copies`: files served as other URLs
    (name -> fixture file the page is copied from)."""
    root = copy_site(tmp_path, "generic")
    robots = root / "robots.txt"  # still forbids /inventory/private/
    robots.write_text(re.sub(r"(?m)^Sitemap:.*$", "", robots.read_text()))
    page_one = root / "inventory" / "index.html"
    page_one.write_text(page_one.read_text().replace('href="/inventory/?page=2"',
                                                     f'href="{link}"'))
    for name, source in copies.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text((root / source).read_text())
    (root / "routes.json").write_text(json.dumps(routes))
    dealer = dealers_db.create(db, slug="maple", name="Maple",
                               website_url=site(root) + "/inventory/")
    return root, dealer


CANONICAL_PAGE_TWO = [
    # an offset link, redirected to the page number
    ("/inventory/?start=5", {"/inventory/?start=5": {
        "redirect": "{{BASE}}/inventory/?page=2", "redirect_status": 301}}, {}),
    # a /page/2/ path, redirected to its query form
    ("/inventory/page/2/", {"/inventory/page/2/": {
        "redirect": "{{BASE}}/inventory/?page=2", "redirect_status": 301}}, {}),
    # the offset redirected to the page number with the site's sort order added
    ("/inventory/?start=5", {"/inventory/?start=5": {
        "redirect": "{{BASE}}/inventory/?page=2&sort=price", "redirect_status": 301}},
     {"inventory__page-2_sort-price.html": "inventory__page-2.html"}),
    # a missing trailing slash added
    ("/inventory?page=2", {"/inventory?page=2": {
        "redirect": "{{BASE}}/inventory/?page=2", "redirect_status": 301}}, {}),
]


@pytest.mark.parametrize("link, routes, copies", CANONICAL_PAGE_TWO,
                         ids=["offset-to-page", "path-to-query", "sort-added", "slash-added"])
def test_later_results_page_redirected_to_its_canonical_url_is_complete(
        db, site, tmp_path, link, routes, copies):
    """A site that canonicalises its pager's URLs with a redirect (`?start=5` -> 301 ->
    `?page=2`, `/page/2/` -> `/?page=2`) was judged incomplete on every run, so its sold
    cars were never removed. Page 2 answered at its canonical URL, showing cars page 1 did
    not, is the page asked for: the run is complete, and a car sold from page 2 is removed
    on the next run while page 2's other cars stay."""
    root, dealer = generic_paged_by(db, site, tmp_path, link, routes, copies)
    _complete_and_the_sold_jeep_removed(db, root, dealer, copies)


def _complete_and_the_sold_jeep_removed(db, root, dealer, copies=()) -> None:
    """Crawl (complete), sell the Jeep (off page 2, wherever the site serves it from, and
    its page gone), crawl again: complete, and only the Jeep removed."""
    job = crawl(db, dealer.id)
    assert job.state == "succeeded", reasons(job)
    before = active_vins(db, dealer.id)
    assert len(before) == GENERIC_VINS and JEEP_VIN in before
    next((root / "inventory").glob(f"*{JEEP_VIN}.html")).unlink()
    for page in [root / "inventory__page-2.html", *(root / n for n in copies)]:
        page.write_text("\n".join(line for line in page.read_text().splitlines()
                                  if JEEP_VIN not in line))
    job = crawl(db, dealer.id)
    assert job.state == "succeeded", reasons(job)
    assert active_vins(db, dealer.id) == before - {JEEP_VIN}
    assert job.counters["removed"] == 1


OFFSET_TO_PAGE = {"/inventory/?start=5": {"redirect": "{{BASE}}/inventory/?page=2",
                                          "redirect_status": 301}}
NO_VEHICLES_PAGE = ("<!doctype html><html><head><title>Inventory | Maple Ridge Motors</title>"
                    "</head><body><p>No vehicles found.</p></body></html>")


@pytest.mark.parametrize("target, files, said", [
    # the canonical page 2 answers with page 1's cars (a search session expired)
    (None, {"inventory__page-2.html": "inventory/index.html"},
     r"results page \S*/inventory/\?start=5 redirected to \S*/inventory/\?page=2, which "
     r"shows no vehicle the pages before it did not"),
    # ... or says it has none
    (None, {"inventory__page-2.html": None},
     r"results page \S*/inventory/\?start=5 redirected to \S*/inventory/\?page=2, which "
     r"shows no vehicle the pages before it did not"),
    # sent to page 1 by its number, to the listing's root (read already), to the home page
    ("{{BASE}}/inventory/?page=1", {"inventory__page-1.html": "inventory/index.html"},
     r"results page \S*/inventory/\?start=5 redirected to \S*/inventory/\?page=1; its "
     r"vehicles are unknown"),
    ("{{BASE}}/inventory/", {},
     r"results page \S*/inventory/\?start=5 redirected to a page already read"),
    ("{{BASE}}/", {}, r"results page \S*/inventory/\?start=5 redirected to \S*/; its"),
    # to page 2 of another listing, even one showing cars page 1 did not
    ("{{BASE}}/specials/?page=2", {"specials__page-2.html": "inventory__page-2.html"},
     r"results page \S*/inventory/\?start=5 redirected to \S*/specials/\?page=2; its"),
], ids=["page-one-again", "no-vehicles", "to-page-one", "to-listing-root", "to-home-page",
        "to-another-listing"])
def test_later_results_page_redirected_to_anything_but_its_canonical_url_removes_nothing(
        db, site, tmp_path, target, files, said):
    """The site that canonicalises `?start=5` to `?page=2` (complete, above) breaks: the
    redirect now ends somewhere that is not page 2 with page 2's cars. Its cars are unknown:
    the run is incomplete and removes nothing."""
    root, dealer = generic_paged_by(db, site, tmp_path, "/inventory/?start=5",
                                    OFFSET_TO_PAGE, {})
    job = crawl(db, dealer.id)
    assert job.state == "succeeded", reasons(job)
    before = active_vins(db, dealer.id)
    assert len(before) == GENERIC_VINS
    for name, source in files.items():
        (root / name).write_text(NO_VEHICLES_PAGE if source is None
                                 else (root / source).read_text())
    if target is not None:
        (root / "routes.json").write_text(json.dumps({"/inventory/?start=5": {
            "redirect": target, "redirect_status": 301}}))
        dealers_db.update(db, dealer.id, website_url=site(root) + "/inventory/")
    job = crawl(db, dealer.id)
    assert_nothing_removed(db, job, dealer.id, before, said)


def generic_linking_page_two_both_ways(db, site, tmp_path, routes: dict):
    """The generic site whose page 1 links page 2 both as `?page=2` (first) and as
    `?start=5`, which answers with `routes` (a redirect): page 2 is asked for, and read, as
    `?page=2` before the redirect of `?start=5` comes back, so Scrapy's duplicate filter
    drops the redirected request unread."""
    root, dealer = generic_paged_by(db, site, tmp_path, "/inventory/?page=2", routes, {})
    page_one = root / "inventory" / "index.html"
    page_one.write_text(page_one.read_text().replace(
        '<a rel="next" href="/inventory/?page=2">Next</a>',
        '<a rel="next" href="/inventory/?page=2">Next</a> <a href="/inventory/?start=5">6-10</a>'))
    assert page_one.read_text().count("?start=5") == 1
    return root, dealer


def test_later_results_page_renamed_to_a_page_already_read_is_complete(db, site, tmp_path):
    """Page 1 links page 2 both ways (`?page=2`, and `?start=5` which answers 301 to
    `?page=2`): the redirected request is dropped as a duplicate, so the rename was never
    judged and the run was incomplete on every run, its sold cars never removed. `?page=2`,
    read in this crawl as page 2 of the same listing with cars page 1 did not show, is the
    page `?start=5` names: the run is complete and a car sold from page 2 is removed."""
    root, dealer = generic_linking_page_two_both_ways(db, site, tmp_path, OFFSET_TO_PAGE)
    _complete_and_the_sold_jeep_removed(db, root, dealer)


@pytest.mark.parametrize("target, files, said", [
    # page 1 under its own URL, read already
    ("{{BASE}}/inventory/", {},
     r"results page \S*/inventory/\?start=5 redirected to a page already read "
     r"\(\S*/inventory/\)"),
    # page 2, read already, answers with page 1's cars (a search session expired)
    ("{{BASE}}/inventory/?page=2", {"inventory__page-2.html": "inventory/index.html"},
     r"results page \S*/inventory/\?start=5 redirected to \S*/inventory/\?page=2, which "
     r"shows no vehicle the pages before it did not"),
    # ... or says it has none
    ("{{BASE}}/inventory/?page=2", {"inventory__page-2.html": None},
     r"results page \S*/inventory/\?start=5 redirected to \S*/inventory/\?page=2, which "
     r"shows no vehicle the pages before it did not"),
], ids=["to-page-one", "page-one-again", "no-vehicles"])
def test_later_results_page_redirected_to_a_page_already_read_that_is_not_it_removes_nothing(
        db, site, tmp_path, target, files, said):
    """The same site, page 1 linking page 2 both ways, but the page `?start=5` is sent to
    (read already) is page 1, or page 2 showing no car page 1 did not: page 2's cars are
    unknown, the run is incomplete and removes nothing."""
    root, dealer = generic_linking_page_two_both_ways(db, site, tmp_path, OFFSET_TO_PAGE)
    job = crawl(db, dealer.id)
    assert job.state == "succeeded", reasons(job)
    before = active_vins(db, dealer.id)
    for name, source in files.items():
        (root / name).write_text(NO_VEHICLES_PAGE if source is None
                                 else (root / source).read_text())
    (root / "routes.json").write_text(json.dumps({"/inventory/?start=5": {
        "redirect": target, "redirect_status": 301}}))
    dealers_db.update(db, dealer.id, website_url=site(root) + "/inventory/")
    job = crawl(db, dealer.id)
    assert_nothing_removed(db, job, dealer.id, before, said)


# --- javascript: a later results page the browser was sent on from ------------------------
# Chromium follows a page's redirects (HTTP 3xx) and its scripts' navigations
# (location.replace, a meta refresh) itself: the crawl sees only where the page ended.

JS_PAGE_TWO_VINS = {"1C6SRFFT0MN104877", "WBA53BJ04MWW95560"}  # fixtures/sites/javascript
SENT_BY_SCRIPT = ("<!doctype html><html><head><title>Inventory</title><script>"
                  "location.replace({target!r})</script></head><body></body></html>")
SPECIALS = {"page": 1, "pages": 1, "total": 1, "vehicles": [{
    "vin": "1G1ZD5ST9JF100220", "year": 2018, "make": "Chevrolet", "model": "Malibu",
    "trim": "LT", "stock": "SR2001", "odometer": "40,112", "color": "Silver",
    "condition": "used", "body": "Sedan", "pricing": {"msrp": None, "sale": 15900,
                                                      "final": 15400},
    "status": "in stock", "link": "/vehicles/2018-chevrolet-malibu-1g1zd5st9jf100220",
    "photo": "/static/img/logo.png"}]}


def javascript_site(tmp_path):
    """The JavaScript-only fixture site, copied, with a one-car specials listing whose page
    (like the inventory's) exists only once its script has run."""
    root = copy_site(tmp_path, "javascript")
    (root / "specials").mkdir()
    (root / "specials" / "index.html").write_text(
        (root / "inventory" / "index.html").read_text().replace("/api/inventory-{page}.json",
                                                                "/api/specials-{page}.json"))
    (root / "api" / "specials-1.json").write_text(json.dumps(SPECIALS))
    return root


# how the site breaks (its routes, and page 2's document if not the usual one), and the problem
SENT_ELSEWHERE = [
    ("its script sending it to page 1 of the specials", {},
     SENT_BY_SCRIPT.format(target="/specials/"),
     r"results page \S*/inventory/\?page=2 redirected to \S*/specials/; its vehicles are "
     "unknown"),
    ("an HTTP 302 to page 1", {"/inventory/?page=2": {"redirect": "{{BASE}}/inventory/"}},
     None, r"results page \S*/inventory/\?page=2 redirected to \S*/inventory/; its "
     "vehicles are unknown"),
    ("its script sending it to page 1", {}, SENT_BY_SCRIPT.format(target="/inventory/"),
     r"results page \S*/inventory/\?page=2 redirected to \S*/inventory/; its vehicles are "
     "unknown"),
]


def test_rendered_later_results_page_sent_elsewhere_in_the_browser_removes_nothing(
        db, site, tmp_path):
    """Page 2 of a JavaScript dealer, rendered in real Chromium: its script sends it to page 1
    of the specials listing (location.replace), or to page 1, or it answers 302 to page 1.
    The crawl read where the browser ended as if page 2 had said so: sent to the specials,
    the run was complete and page 2's cars were removed; sent to page 1, the run blamed
    page 1 ("shows only vehicles of the pages before it"). (One baseline crawl, then each
    breakage in turn: a browser crawl costs seconds.)"""
    root = javascript_site(tmp_path)
    usual_page_two = (root / "inventory__page-2.html").read_text()
    dealer = dealers_db.create(db, slug="sunset", name="Sunset Ridge Auto Gallery",
                               website_url=site(root) + "/inventory/", platform="javascript")
    job = crawl(db, dealer.id)
    assert job.state == "succeeded", reasons(job)
    before = active_vins(db, dealer.id)
    assert JS_PAGE_TWO_VINS <= before and len(before) == 5
    for how, routes, page_two, said in SENT_ELSEWHERE:
        (root / "routes.json").write_text(json.dumps(routes))
        (root / "inventory__page-2.html").write_text(page_two or usual_page_two)
        dealers_db.update(db, dealer.id, website_url=site(root) + "/inventory/")
        job = crawl(db, dealer.id)
        try:
            assert_nothing_removed(db, job, dealer.id, before, said)
            # one line for page 2, not also one blaming the page it was sent to
            assert [r for r in job.report["reasons"] if "shows only" in r] == []
        except AssertionError as exc:
            raise AssertionError(f"page 2 broken by {how}: {exc}") from None


def test_rendered_later_results_pages_renamed_in_the_browser_are_complete(db, site, tmp_path):
    """Later pages the browser ended on under the site's own URL for them, showing their own
    cars, are the pages asked for, and the run is complete: page 2 answers 301 with its
    sort order added, and its script adds a tracking parameter and a fragment to the address
    (history.replaceState); page 3's script sends it to its canonical URL (no trailing
    slash, the sort order: location.replace)."""
    root = javascript_site(tmp_path)
    for name in ("inventory-1.json", "inventory-2.json"):  # three pages, the third the Malibu
        page = json.loads((root / "api" / name).read_text())
        (root / "api" / name).write_text(json.dumps({**page, "pages": 3, "total": 6}))
    (root / "api" / "inventory-3.json").write_text(json.dumps(
        {**SPECIALS, "page": 3, "pages": 3, "total": 6}))
    (root / "routes.json").write_text(json.dumps({"/inventory/?page=2": {
        "redirect": "{{BASE}}/inventory/?page=2&sort=price", "redirect_status": 301}}))
    (root / "inventory__page-2_sort-price.html").write_text(
        (root / "inventory" / "index.html").read_text().replace(
            "</body>", '<script>history.replaceState(null, "", location.href + '
                       '"&utm_source=inventory#results")</script></body>'))
    (root / "inventory__page-3.html").write_text(
        SENT_BY_SCRIPT.format(target="/inventory?page=3&sort=price"))
    dealer = dealers_db.create(db, slug="sunset", name="Sunset Ridge Auto Gallery",
                               website_url=site(root) + "/inventory/", platform="javascript")
    job = crawl(db, dealer.id)
    assert job.state == "succeeded" and job.report["complete"] is True, reasons(job)
    assert active_vins(db, dealer.id) >= JS_PAGE_TWO_VINS | {SPECIALS["vehicles"][0]["vin"]}
    assert len(active_vins(db, dealer.id)) == 6
