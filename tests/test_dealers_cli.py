"""`forecourt dealers add/set/show`: a dealership can be corrected after it is added, every
value is checked the same way both times, and the hints name commands that exist."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from crawler.db import dealers as dealers_db
from crawler.db import jobs as jobs_db
from crawler.errors import InvalidInput
from tests.integration.test_ingest_feeds import fast_retries  # noqa: F401 (a fixture)
from tests.test_cli import FORECOURT, ROOT, command_paths, run

PAGE = ROOT / "fixtures/sites/generic/cases/graph.html"


def run_in(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([FORECOURT, *args], capture_output=True, text=True, timeout=120,
                          cwd=cwd)


def one_error_line(result: subprocess.CompletedProcess) -> str:
    """The single `error: ... (fix)` line a failed command prints, checked."""
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and re.search(r"\(.+\)$", lines[0]), lines[0]
    assert "Traceback" not in result.stderr
    return lines[0]


def named_commands(text: str) -> list[str]:
    """The `forecourt ...` commands a hint names, as command paths (`dealers set`)."""
    return [" ".join(w for w in cmd.split()[1:3] if re.fullmatch(r"[a-z]+", w))
            for cmd in re.findall(r"`(forecourt [^`]+)`", text)]


def add_acme(*extra: str) -> None:
    added = run("dealers", "add", "acme-motors", "--name", "Acme Motors", "--url",
                "https://acme.test/", "--platform", "generic", *extra)
    assert added.returncode == 0, added.stderr


def test_set_changes_only_the_given_fields_and_prints_the_dealer(db, tmp_path):
    feed = tmp_path / "stock.csv"
    feed.write_text("vin\n")
    add_acme("--feed", str(feed), "--feed-format", "csv")
    before = dealers_db.get(db, "acme-motors")

    result = run("dealers", "set", "acme-motors", "--name", "Acme Motor Company",
                 "--platform", "dealeron")
    assert result.returncode == 0, result.stderr
    after = dealers_db.get(db, "acme-motors")
    assert (after.name, after.platform) == ("Acme Motor Company", "dealeron")
    assert (after.website_url, after.feed_url, after.feed_format) == (
        before.website_url, before.feed_url, before.feed_format)
    assert "Acme Motor Company" in result.stdout and "dealeron" in result.stdout
    assert "https://acme.test/" in result.stdout  # the whole dealer, not only what changed

    result = run("dealers", "set", "acme-motors", "--url", "https://acme-motors.test/cars/",
                 "--feed", "https://acme-motors.test/feed.xml", "--feed-format", "XML")
    assert result.returncode == 0, result.stderr
    after = dealers_db.get(db, "acme-motors")
    assert after.website_url == "https://acme-motors.test/cars/"
    assert after.feed_url == "https://acme-motors.test/feed.xml"  # a URL is stored as given
    assert (after.feed_format, after.platform, after.name) == (
        "xml", "dealeron", "Acme Motor Company")

    shown = run("dealers", "show", "acme-motors")
    assert shown.returncode == 0, shown.stderr
    for value in ("Acme Motor Company", "https://acme-motors.test/cars/", "dealeron",
                  "https://acme-motors.test/feed.xml", "xml"):
        assert value in shown.stdout


def test_set_names_what_changed_as_show_labels_it(db, tmp_path):
    """`dealers set` answered "updated dealership x: feed_format, website_url" (the columns'
    names) and "schedule" for --schedule, which sets what the schedule runs, not when."""
    add_acme()
    result = run("dealers", "set", "acme-motors", "--url", "https://acme-motors.test/",
                 "--platform", "dealeron", "--feed", "https://acme-motors.test/feed.xml",
                 "--feed-format", "xml", "--schedule", "feed")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == ("updated dealership acme-motors: feed, feed "
                                             "format, platform, scheduled runs, website")
    for label in ("feed", "feed format", "platform", "scheduled runs", "website"):
        assert shown_row(result.stdout, label)


@pytest.mark.parametrize("args, message", [
    (["--platform", "nosuch"], "no spider for platform 'nosuch'"),
    (["--url", "ftp://acme.test/"], "http(s) URL"),
    (["--feed", "no/such/feed.csv"], "no feed file 'no/such/feed.csv'"),
    (["--feed", "ftp://acme.test/feed.csv"], "http(s) URL"),
    (["--feed-format", "xls"], "unknown feed format 'xls'"),
    ([], "nothing to change"),
])
def test_set_checks_values_as_add_does_and_changes_nothing_on_error(db, args, message):
    add_acme()
    before = dealers_db.get(db, "acme-motors")
    line = one_error_line(run("dealers", "set", "acme-motors", "--name", "Changed", *args)
                          if args else run("dealers", "set", "acme-motors"))
    assert message in line
    assert dealers_db.get(db, "acme-motors") == before


def test_an_unknown_platform_is_refused_by_add_with_the_valid_ones(db):
    line = one_error_line(run("dealers", "add", "acme-motors", "--name", "Acme", "--url",
                              "https://acme.test/", "--platform", "nosuch"))
    assert "no spider for platform 'nosuch'" in line
    assert "generic" in line and "dealeron" in line  # the fix lists the valid platforms
    assert db.execute("SELECT count(*) AS n FROM dealerships").fetchone()["n"] == 0


def test_add_and_set_store_a_local_feed_as_an_absolute_path_and_refuse_a_missing_one(
        db, tmp_path):
    (tmp_path / "feeds").mkdir()
    (tmp_path / "feeds" / "stock.csv").write_text("vin\n")
    (tmp_path / "feeds" / "other.csv").write_text("vin\n")

    line = one_error_line(run_in(tmp_path, "dealers", "add", "acme-motors", "--name", "Acme",
                                 "--feed", "feeds/missing.csv"))
    assert "no feed file 'feeds/missing.csv'" in line
    assert db.execute("SELECT count(*) AS n FROM dealerships").fetchone()["n"] == 0

    added = run_in(tmp_path, "dealers", "add", "acme-motors", "--name", "Acme",
                   "--feed", "feeds/stock.csv")
    assert added.returncode == 0, added.stderr
    assert dealers_db.get(db, "acme-motors").feed_url == str(tmp_path / "feeds" / "stock.csv")

    changed = run_in(tmp_path / "feeds", "dealers", "set", "acme-motors", "--feed",
                     "./other.csv")
    assert changed.returncode == 0, changed.stderr
    assert dealers_db.get(db, "acme-motors").feed_url == str(tmp_path / "feeds" / "other.csv")
    one_error_line(run_in(tmp_path, "dealers", "set", "acme-motors", "--feed", "feeds"))


def test_set_and_show_of_an_unknown_dealer_say_so(db):
    for cmd in ("set", "show"):
        args = ["dealers", cmd, "nobody"] + (["--name", "X"] if cmd == "set" else [])
        assert "no dealership 'nobody'" in one_error_line(run(*args))


def test_hints_name_the_command_that_corrects_a_dealer(db):
    commands = command_paths()
    add_acme()
    again = one_error_line(run("dealers", "add", "acme-motors", "--name", "Acme", "--url",
                               "https://acme.test/", "--platform", "generic"))
    assert "`forecourt dealers set acme-motors`" in again

    assert run("dealers", "add", "feed-only", "--name", "Feed Only", "--feed",
               str(ROOT / "fixtures/feeds/harbor-city-auto.csv")).returncode == 0
    no_url = one_error_line(run("crawl", "feed-only"))
    assert "`forecourt dealers set feed-only --url URL`" in no_url

    # a worker's attempt of a job whose dealer lacks what the job needs
    from jobs import attempt

    hints = []
    for slug, kind, run_attempt in (("feed-only", "crawl", attempt.crawl),
                                    ("acme-motors", "feed", attempt.feed)):
        dealer = dealers_db.get(db, slug)
        job, _ = jobs_db.create_or_get_active(db, dealer.id, kind, "operator")
        with pytest.raises(InvalidInput) as raised:
            run_attempt(db, job, dealer, "test-worker")
        hints.append(raised.value.hint)
    assert "`forecourt dealers set feed-only --url URL`" in hints[0]
    assert "`forecourt dealers set acme-motors --feed F`" in hints[1]

    for hint in (again, no_url, *hints):
        named = named_commands(hint)
        assert named and all(path in commands for path in named), (hint, named)


def test_extract_with_an_unknown_platform_is_an_error_not_zero_items():
    line = one_error_line(run("extract", str(PAGE), "--platform", "nosuch"))
    assert "no spider for platform 'nosuch'" in line and "generic" in line
    known = run("extract", str(PAGE), "--platform", "generic", "--url", "https://m.test/c")
    assert known.returncode == 0 and "19XFC2F7XME104512" in known.stdout


def test_dealers_show_and_list_never_print_a_feed_urls_credentials(db):
    added = run("dealers", "add", "secretive", "--name", "Secretive", "--feed",
                "https://user:hunter2@feeds.example.com/stock.csv?token=abc123")
    assert added.returncode == 0, added.stderr
    for args in (("dealers", "show", "secretive"), ("dealers", "list")):
        shown = run(*args)
        assert shown.returncode == 0, shown.stderr
        assert "hunter2" not in shown.stdout and "abc123" not in shown.stdout
        assert "feeds.example.com" in shown.stdout


# -- what the schedule runs (--schedule) -------------------------------------------------------

def shown_row(stdout: str, label: str) -> str:
    """The value of one row of `dealers show`'s table."""
    line = next(ln for ln in stdout.splitlines() if ln.strip("│ ").startswith(label))
    return line.split("│")[2].strip()


def test_schedule_picks_what_the_scheduler_runs_for_a_dealer_with_a_website_and_a_feed(
        db, tmp_path):
    from datetime import timedelta

    from crawler.db import schedules as schedules_db
    from jobs import scheduler

    feed = tmp_path / "stock.csv"
    feed.write_text("vin\n")
    add_acme("--feed", str(feed))
    shown = run("dealers", "show", "acme-motors")
    assert shown_row(shown.stdout, "scheduled runs") == "crawl (default: it has a website)"

    changed = run("dealers", "set", "acme-motors", "--schedule", "feed")
    assert changed.returncode == 0, changed.stderr
    assert "updated dealership acme-motors: scheduled runs" in changed.stdout
    assert shown_row(changed.stdout, "scheduled runs") == "feed (set with --schedule)"
    dealer = dealers_db.get(db, "acme-motors")
    assert dealer.settings == {"schedule_kind": "feed"}

    dealers_db.update(db, dealer.id, schedule_interval_s=3600)
    schedules_db.set_next(db, dealer.id, schedules_db.server_now(db) - timedelta(minutes=1),
                          None)
    [job_id] = scheduler.tick(db)
    assert jobs_db.get(db, job_id).kind == "feed"

    back = run("dealers", "set", "acme-motors", "--schedule", "CRAWL", "--name", "Acme Co")
    assert back.returncode == 0, back.stderr
    assert dealers_db.get(db, "acme-motors").settings == {"schedule_kind": "crawl"}


def test_schedule_needs_what_the_job_reads_and_add_takes_it_too(db, tmp_path):
    feed = tmp_path / "stock.csv"
    feed.write_text("vin\n")
    commands = command_paths()
    line = one_error_line(run("dealers", "add", "feed-only", "--name", "Feed Only", "--feed",
                              str(feed), "--schedule", "crawl"))
    assert "dealership 'feed-only' has no website to crawl on its schedule" in line
    assert "(add --url URL too, or use --schedule feed)" in line
    assert db.execute("SELECT count(*) AS n FROM dealerships").fetchone()["n"] == 0

    added = run("dealers", "add", "feed-only", "--name", "Feed Only", "--feed", str(feed),
                "--schedule", "feed")
    assert added.returncode == 0, added.stderr
    assert dealers_db.get(db, "feed-only").settings == {"schedule_kind": "feed"}

    add_acme()
    before = dealers_db.get(db, "acme-motors")
    line = one_error_line(run("dealers", "set", "acme-motors", "--schedule", "feed",
                              "--name", "Changed"))
    assert "dealership 'acme-motors' has no feed to ingest on its schedule" in line
    assert "`forecourt dealers set acme-motors --feed F`" in line
    assert all(path in commands for path in named_commands(line))
    line = one_error_line(run("dealers", "set", "acme-motors", "--schedule", "6h"))
    assert "unknown scheduled job kind '6h'" in line and "use --schedule crawl or" in line
    assert "`forecourt schedule set SLUG CRON`" in line  # the times are set there
    assert dealers_db.get(db, "acme-motors") == before

    # a feed given with the same command counts
    both = run("dealers", "set", "acme-motors", "--feed", str(feed), "--schedule", "feed")
    assert both.returncode == 0, both.stderr
    after = dealers_db.get(db, "acme-motors")
    assert (after.feed_url, after.settings) == (str(feed), {"schedule_kind": "feed"})


# -- the dealer's feed mapping (--mapping, --no-mapping) ----------------------------------------

FEEDS = ROOT / "fixtures" / "feeds"
CUSTOM_MAPPING = FEEDS / "dealer-custom.mapping.toml"


@pytest.mark.parametrize("text, message", [
    ('{"vin": "VIN", "colour": "Colour"}', "mapping names unknown field(s) 'colour'"),
    ('{"vin": ', "mapping file bad.json does not parse"),
    ('{"extends": "dealertrack"}', "mapping extends unknown 'dealertrack'"),
    ('{"price": 5}', "mapping for 'price' must be a column name or a list of them"),
    (None, "no mapping file"),
])
def test_add_and_set_check_a_mapping_file_as_ingest_does(db, tmp_path, text, message):
    bad = tmp_path / "bad.json"
    if text is not None:
        bad.write_text(text)
    feed = str(FEEDS / "dealer-custom.csv")
    line = one_error_line(run("dealers", "add", "custom-motors", "--name", "Custom",
                              "--feed", feed, "--mapping", str(bad)))
    assert message in line
    assert db.execute("SELECT count(*) AS n FROM dealerships").fetchone()["n"] == 0
    added = run("dealers", "add", "custom-motors", "--name", "Custom", "--feed", feed)
    assert added.returncode == 0, added.stderr
    assert message in one_error_line(run("dealers", "set", "custom-motors", "--mapping",
                                         str(bad)))
    assert message in one_error_line(run("ingest", "custom-motors", "--mapping", str(bad)))
    assert dealers_db.get(db, "custom-motors").feed_mapping is None


def test_a_stored_mapping_is_shown_used_by_ingest_and_cleared(db):
    from ingest import mapping as mapping_mod

    added = run("dealers", "add", "custom-motors", "--name", "Custom", "--feed",
                str(FEEDS / "dealer-custom.csv"), "--mapping", str(CUSTOM_MAPPING))
    assert added.returncode == 0, added.stderr
    stored = dealers_db.get(db, "custom-motors").feed_mapping
    assert stored == mapping_mod.load_override(CUSTOM_MAPPING)  # as ingest --mapping takes it

    shown = run("dealers", "show", "custom-motors")
    assert shown.returncode == 0, shown.stderr
    text = " ".join(ln.strip("│ ") for ln in shown.stdout.splitlines())
    assert "alone (extends none): vin <- Vehicle Identification; year <- Yr;" in text
    assert "defaults for condition, mileage_unit" in text

    ingested = run("ingest", "custom-motors")  # no --mapping: the stored one
    assert ingested.returncode == 0, ingested.stderr
    job = jobs_db.list_for(db, dealers_db.get(db, "custom-motors").id, limit=1)[0]
    assert job.counters["added"] == 2 and job.report["feed"]["mapping"] == "custom"

    line = one_error_line(run("dealers", "set", "custom-motors", "--mapping",
                              str(CUSTOM_MAPPING), "--no-mapping"))
    assert "--mapping and --no-mapping" in line
    cleared = run("dealers", "set", "custom-motors", "--no-mapping")
    assert cleared.returncode == 0, cleared.stderr
    assert "updated dealership custom-motors: feed mapping" in cleared.stdout
    assert dealers_db.get(db, "custom-motors").feed_mapping is None
    assert shown_row(cleared.stdout, "feed mapping") == "- (detected from the feed's columns)"


def test_a_mapping_set_by_the_cli_makes_the_next_run_of_an_unchanged_http_feed_process_it(
        db, tmp_path, fast_retries):  # noqa: F811
    from tests.integration.test_ingest_feeds import FeedServer
    from tests.integration.test_ingest_feeds import ingest as run_feed

    server = FeedServer((FEEDS / "harbor-city-auto.csv").read_bytes())
    try:
        added = run("dealers", "add", "harbor", "--name", "Harbor", "--feed", server.url)
        assert added.returncode == 0, added.stderr
        d = dealers_db.get(db, "harbor")
        assert run_feed(db, d).state == "succeeded"
        assert run_feed(db, d).report.get("unchanged_feed")  # as it stands: unchanged

        mapping = tmp_path / "harbor.json"
        mapping.write_text('{"extends": "homenet", "description": ["Description", "Comments"]}')
        assert run("dealers", "set", "harbor", "--mapping", str(mapping)).returncode == 0
        job = run_feed(db, d)
        assert not job.report.get("unchanged_feed"), job.report.get("note")
        assert job.report["feed"]["mapping"] == "homenet+override"
        assert "If-None-Match" not in server.requests[-1]
        assert run_feed(db, d).report.get("unchanged_feed")  # under the new mapping

        assert run("dealers", "set", "harbor", "--no-mapping").returncode == 0
        job = run_feed(db, d)
        assert not job.report.get("unchanged_feed"), job.report.get("note")
        assert job.report["feed"]["mapping"] == "homenet"
    finally:
        server.close()


def test_list_names_the_generic_spider_as_add_does(db):
    """`dealers add` says "stored as generic"; the list said "-" for the same dealer."""
    dealers_db.create(db, slug="acme-motors", name="Acme Motors",
                      website_url="https://acme.test/")  # what an undetected platform stores
    listing = run("dealers", "list")
    row = next(ln for ln in listing.stdout.splitlines() if "acme-motors" in ln)
    assert "generic" in row, row


def test_a_feed_only_dealer_has_no_platform_in_list_or_show(db):
    """A dealer with a feed and no website was listed as platform "generic" and shown as
    "- (generic spider)": a website spider for a dealer nothing is crawled for."""
    dealers_db.create(db, slug="feed-only", name="Feed Only",
                      feed_url="https://feeds.test/inventory.csv")
    listing = run("dealers", "list")
    row = next(ln for ln in listing.stdout.splitlines() if "feed-only" in ln)
    assert row.split("│")[3].strip() == "-", row
    assert shown_row(run("dealers", "show", "feed-only").stdout, "platform") == \
        "- (no website)"


def test_list_stale_names_each_overdue_dealer_how_long_and_its_last_error(db):
    """On-call had `dealers list` (last job state only): nothing said which dealers' inventory
    is out of date, for how long, or why."""
    from tests.api.conftest import freshness_world

    acme = dealers_db.create(db, slug="acme", name="Acme Motors", website_url="https://a.test/")
    bolt = dealers_db.create(db, slug="bolt", name="Bolt Cars", feed_url="https://b.test/f.csv")
    freshness_world(db, acme.id, bolt.id)
    listing = run("dealers", "list", "--stale")
    assert listing.returncode == 0, listing.stderr
    cells = [ln.replace("│", " ").split() for ln in listing.stdout.splitlines()]
    rows = {c[0]: " ".join(c) for c in cells if c and c[0] in
            {"acme", "bolt", "degraded", "never", "newbie", "paused", "unscheduled",
             "resumed"}}
    assert set(rows) == {"acme", "degraded", "never"}, listing.stdout
    assert "3 h" in rows["acme"] and "failed" in rows["acme"] and "boom" in rows["acme"]
    assert "5 h" in rows["degraded"] and "partial" in rows["degraded"]
    assert "60% below the baseline" in rows["degraded"]
    assert "never" in rows["never"].split(None, 1)[1] and "no such host" in rows["never"]
    assert "3 stale of 6" in listing.stdout
    # the full list says which dealers are stale too: acme was due two hours after its
    # success, plus the grace (15 min; an interval's slots are not jittered)
    full = run("dealers", "list")
    cells = [ln.replace("│", " ").split() for ln in full.stdout.splitlines()]
    listed = {c[0]: " ".join(c) for c in cells if c}
    assert "stale for 45 min" in listed["acme"], full.stdout
    # resumed just now after ten days: its inventory is old, but not stale yet
    assert "rescheduled" in listed["resumed"] and "10 d" in listed["resumed"], full.stdout
    assert "stale" not in listed["resumed"], full.stdout
    assert "current" in listed["bolt"] and "stale" not in listed["paused"], full.stdout


def test_adding_a_taken_slug_is_refused_before_its_site_is_fetched(db, tmp_path):
    """`dealers add` of a slug already taken fetched the new URL to detect its platform
    first: "detected platform: ..." (or "platform not detected ... stored as generic"),
    then the error, and a site that does not answer held the refusal for its fetch timeout."""
    import json

    from crawler import fixture_server

    add_acme()
    (tmp_path / "routes.json").write_text(json.dumps({"/": {"hang": True}}))
    server = fixture_server.serve(tmp_path)
    try:
        result = run("dealers", "add", "acme-motors", "--name", "Acme Again", "--url",
                     fixture_server.base_url(server) + "/")
        hits = dict(server.RequestHandlerClass.hits)
    finally:
        server.shutdown()
        server.server_close()
    assert "already exists" in one_error_line(result)
    assert "platform" not in result.stdout, result.stdout
    assert not hits, hits  # the site was never asked
