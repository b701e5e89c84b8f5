"""Platform searches that declare their size (Dealer.com `totalCount`, DealerInspire `nbHits`
and `nbPages`, DealerOn `itemCount`), crawled for real on 127.0.0.1: a run whose pages gave
fewer vehicles than the search declared, or whose total changed while it paged, did not see
the whole inventory. It records why, is incomplete, and removes nothing. Each test crawls the
site whole first (the baseline), then breaks it the way real sites break and crawls again.
(From review revcrawl, findings 1, 2 and 7.)"""

from __future__ import annotations

import json

import pytest

from crawler.db import dealers as dealers_db
from tests.crawling import active_vins, copy_site, crawl

pytestmark = pytest.mark.integration


def reasons(job) -> list[str]:
    return list((job.report or {}).get("reasons") or [])


def assert_nothing_removed(db, job, dealer_id: int, before: set[str], says: str) -> None:
    """The run is incomplete (partial), removed nothing, and its reasons say `says`."""
    lost = before - active_vins(db, dealer_id)
    assert not lost and job.counters.get("removed", 0) == 0, (
        f"run {job.state}/{job.verdict} removed still-listed vehicles {sorted(lost)}; "
        f"report reasons: {reasons(job)}")
    assert job.state == "partial", (job.state, reasons(job))
    assert any(says in r for r in reasons(job)), reasons(job)


def _page_short(path, key: str, keep: int) -> None:
    """The API page at `path` answers with only its first `keep` vehicles (its totals as
    before): a search backend timing out on a shard, a CDN serving a stale partial page."""
    data = json.loads(path.read_text())
    data[key] = data[key][:keep]
    path.write_text(json.dumps(data))


def _dealercom(db, site, root):
    base = site(root)
    dealer = dealers_db.create(db, slug="larkspur", name="Larkspur Valley Honda",
                               website_url=base + "/", platform="dealercom")
    job = crawl(db, dealer.id)
    assert job.state == "succeeded", (job.error, reasons(job))  # 21 entries, one without VIN
    return dealer, active_vins(db, dealer.id)


def test_dealercom_api_page_short_of_its_total_count_leaves_the_run_partial(
        db, site, tmp_path):
    """getInventory says totalCount 21 (20 vehicles and one entry without a VIN, which
    counts: the site lists it, we reject it); its second page now carries 5 of its 9 entries.
    The spider asks on from the entries it received (start=17, empty) and 17 of 21 is not the
    whole inventory, although 16 of 20 VINs would pass the count gate."""
    root = copy_site(tmp_path, "dealercom")
    dealer, before = _dealercom(db, site, root)
    _page_short(root / "api" / "getInventory" / "start-12.json", "inventory", 5)
    job = crawl(db, dealer.id)
    assert_nothing_removed(db, job, dealer.id, before,
                           "listed 17 of the 21 vehicles its totalCount declared")


def test_dealercom_page_asked_on_from_the_entries_received_completes_the_run(
        db, site, tmp_path):
    """A first page shorter than its pageSize (7 of 12 entries, the rest served from the
    next offset) is not a loss: the next page is asked from start=7, not start=12, so the
    five entries after it are read and the run is complete."""
    root = copy_site(tmp_path, "dealercom")
    dealer, before = _dealercom(db, site, root)
    api = root / "api" / "getInventory"
    entries = [e for n in (0, 12) for e in json.loads((api / f"start-{n}.json").read_text())
               ["inventory"]]
    for start, page in ((0, entries[:7]), (7, entries[7:19]), (19, entries[19:])):
        data = json.loads((api / "start-0.json").read_text())
        data["inventory"] = page
        data["pageInfo"]["pageStart"] = start
        (api / f"start-{start}.json").write_text(json.dumps(data))
    (api / "start-12.json").unlink()
    job = crawl(db, dealer.id)
    assert job.state == "succeeded", (job.error, reasons(job))
    assert active_vins(db, dealer.id) == before and job.counters.get("removed", 0) == 0


@pytest.mark.parametrize("page, says", [
    (1, "listed 10 of the 22 vehicles its nbHits declared (page 2 of 3 had no hits)"),
    (2, "listed 20 of the 22 vehicles its nbHits declared (page 3 of 3 had no hits)"),
], ids=["middle-page", "last-page"])
def test_dealerinspire_index_page_without_hits_within_nbpages_leaves_the_run_partial(
        db, site, tmp_path, page, says):
    """The search index (nbPages 3, nbHits 22) answers one of its pages with no hits. Paging
    stops there, and fewer hits than the 22 the index declared (one with a malformed VIN,
    which counts) is not the whole inventory, although 20 of 22 is an ordinary day's sales
    for the count gate."""
    root = copy_site(tmp_path, "dealerinspire")
    base = site(root)
    dealer = dealers_db.create(db, slug="bayside", name="Bayside Harbor Toyota",
                               website_url=base + "/inventory/", platform="dealerinspire")
    job = crawl(db, dealer.id)
    assert job.state == "succeeded", (job.error, reasons(job))
    before = active_vins(db, dealer.id)
    (root / "algolia" / f"page-{page}.json").unlink()  # answered {"hits": [], nbPages 3}
    job = crawl(db, dealer.id)
    assert_nothing_removed(db, job, dealer.id, before, says)


NO_MATCHES = """<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<title>New and Used Vehicles for Sale | Riverbend Chevrolet</title></head><body>
<h2>No vehicles match your search.</h2><p>Try removing some filters.</p></body></html>"""


def _dealeron(db, site, root):
    base = site(root)
    dealer = dealers_db.create(db, slug="riverbend", name="Riverbend Chevrolet",
                               website_url=base + "/searchall.aspx", platform="dealeron")
    job = crawl(db, dealer.id)
    assert job.state == "succeeded", (job.error, reasons(job))
    before = active_vins(db, dealer.id)
    assert len(before) == 15
    return dealer, before


def test_dealeron_later_page_saying_no_vehicles_leaves_the_run_partial(db, site, tmp_path):
    """DealerOn pages are `?pt=N`. Page 2 (of the 2 that itemCount 15 promised) answers
    "No vehicles match your search" (an expired search session): a later page of the
    listing saying it is empty is a site fault, not a sell-out of the rest."""
    root = copy_site(tmp_path, "dealeron")
    dealer, before = _dealeron(db, site, root)
    (root / "searchall.aspx__pt-2.html").write_text(NO_MATCHES)
    job = crawl(db, dealer.id)
    assert_nothing_removed(db, job, dealer.id, before, "?pt=2 says no vehicles although it "
                                                       "is a later page of the listing")
    assert any("listed 12 of the 15 vehicles its itemCount declared" in r
               for r in reasons(job)), reasons(job)


def test_dealeron_later_page_short_of_its_item_count_leaves_the_run_partial(
        db, site, tmp_path):
    """Page 2 shows one of its three cards (its tagging data still says itemCount 15)."""
    root = copy_site(tmp_path, "dealeron")
    dealer, before = _dealeron(db, site, root)
    page = root / "searchall.aspx__pt-2.html"
    lines = page.read_text().splitlines(keepends=True)
    assert all("data-vehicle-information" in lines[i] for i in (12, 18, 24))
    page.write_text("".join(lines[:18] + lines[30:]))
    job = crawl(db, dealer.id)
    assert_nothing_removed(db, job, dealer.id, before,
                           "listed 13 of the 15 vehicles its itemCount declared")


def test_dealeron_site_showing_six_per_page_is_paged_by_what_page_one_shows(
        db, site, tmp_path):
    """The dealer's search now shows 6 per page without saying so in the URL (no `pn`): 15
    vehicles need pages 1-3. The page size is taken from page 1's cards, not assumed to be
    12 (which planned pages 1-2 and lost page 3's cars), and the run is complete."""
    root = copy_site(tmp_path, "dealeron")
    dealer, before = _dealeron(db, site, root)
    lines = (root / "searchall.aspx.html").read_text().splitlines(keepends=True)
    head = [ln for ln in lines[:12] if '"ItemList"' not in ln]  # cards say it all
    cards, tail = lines[12:84], lines[84:]
    assert all("data-vehicle-information" in cards[i] for i in range(0, 72, 6))
    last = (root / "searchall.aspx__pt-2.html").read_text()
    (root / "searchall.aspx__pt-3.html").write_text(last)
    (root / "searchall.aspx.html").write_text("".join(head + cards[:36] + tail))
    (root / "searchall.aspx__pt-2.html").write_text("".join(
        [ln.replace("?pt=2", "?pt=3") for ln in head] + cards[36:] + tail))
    job = crawl(db, dealer.id)
    assert job.state == "succeeded", (job.error, reasons(job))
    assert active_vins(db, dealer.id) == before and job.counters.get("removed", 0) == 0


SELLING_API = '''
import json


def handle(request):
    if request.path != "/api/widget/ws-inv-data/getInventory":
        return None
    body = json.loads(request.body or b"{}")
    start = int(((body.get("inventoryParameters") or {}).get("start") or ["0"])[0])
    entries = json.loads((request.root / "entries.json").read_text())
    sell, sold = request.root / "sell.txt", request.root / "sold.txt"
    if sold.exists():
        entries = [e for e in entries if e["vin"] != sold.read_text().strip()]
    answer = {"inventory": entries[start:start + 12],
              "pageInfo": {"pageStart": start, "pageSize": 12, "totalCount": len(entries)}}
    if start == 0 and sell.exists() and not sold.exists():
        sold.write_text(sell.read_text())  # sold while the crawler reads page 1
    return 200, "application/json; charset=utf-8", json.dumps(answer).encode()
'''


def test_dealercom_total_changing_between_pages_leaves_the_run_partial(db, site, tmp_path):
    """Offset paging over a list that changes under it: a car on page 1 sells after page 1
    is read, every later car moves up one place, and the first car of page 2 is now the last
    of page 1, read by no request. The run sees as many vehicles as the final totalCount
    (19), so a count check alone passes; the totalCount changing between pages (20, then
    19) shows the pages were not one inventory, and the shifted car is not removed."""
    root = copy_site(tmp_path, "dealercom")
    api = root / "api" / "getInventory"
    entries = [e for n in (0, 12) for e in json.loads((api / f"start-{n}.json").read_text())
               ["inventory"] if e.get("vin")]
    assert len(entries) == 20
    (root / "entries.json").write_text(json.dumps(entries))
    (root / "handler.py").write_text(SELLING_API)
    dealer, before = _dealercom(db, site, root)
    shifted = entries[12]["vin"].upper()
    assert shifted in before
    (root / "sell.txt").write_text(entries[2]["vin"])
    job = crawl(db, dealer.id)
    assert_nothing_removed(db, job, dealer.id, before,
                           "totalCount changed from 20 to 19 while paging")
