"""The CLI as a user meets it: every command documented, helpful, and one-line errors."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer

ROOT = Path(__file__).resolve().parent.parent
FORECOURT = str(Path(sys.executable).parent / "forecourt")


def command_paths() -> list[str]:
    from crawler.cli import _register, app

    _register()
    root = typer.main.get_command(app)
    paths = []

    def walk(cmd, prefix):
        subs = getattr(cmd, "commands", None)
        if subs:
            for name, sub in subs.items():
                walk(sub, f"{prefix} {name}")
        else:
            paths.append(prefix.strip())

    walk(root, "")
    return sorted(paths)


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([FORECOURT, *args], capture_output=True, text=True, timeout=120)


def test_every_command_is_documented_in_the_readme():
    readme = (ROOT / "README.md").read_text()
    missing = [p for p in command_paths() if f"forecourt {p}" not in readme]
    assert not missing, f"commands missing from README.md: {missing}"


# Every command's --help, from one process of the installed interpreter (a process per
# command cost ~1.5 s each in imports alone).
_HELPS = """
import contextlib, io, json, sys
import typer
from crawler.cli import _register, app
_register()
command = typer.main.get_command(app)
out = {}
for path in json.loads(sys.argv[1]):
    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        code = command.main([*path.split(), "--help"], prog_name="forecourt",
                            standalone_mode=False)
    out[path] = [code or 0, text.getvalue()]
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def helps() -> dict[str, list]:
    import json

    paths = command_paths()
    done = subprocess.run([sys.executable, "-c", _HELPS, json.dumps(paths)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


@pytest.mark.parametrize("path", command_paths())
def test_every_command_has_help(path, helps):
    code, text = helps[path]
    assert code == 0, text
    assert "Usage: forecourt " + path in text


@pytest.mark.parametrize("args, message", [
    (["crawl"], "Missing argument 'SLUG'"),
    (["crawl", "--bogus"], "No such option: --bogus"),
    (["vehicles", "x", "--limit", "0"], "--limit"),
    (["nonsense"], "No such command 'nonsense'"),
    (["dealers", "add", "Bad Slug", "--name", "x", "--url", "https://x.test/"], "slug"),
    (["dealers", "add", "ok-slug", "--name", "x", "--url", "ftp://x.test/"], "http(s) URL"),
    (["vehicles", "no-such-dealer"], "no dealership 'no-such-dealer'"),
    (["extract", "/no/such/page.html"], "no file"),
])
def test_bad_input_is_one_readable_line_with_the_fix(args, message):
    result = run(*args)
    assert result.returncode != 0
    assert_one_error_line(result, message)


def assert_one_error_line(result: subprocess.CompletedProcess, message: str) -> str:
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and message.lower() in lines[0].lower(), lines[0]
    assert "Traceback" not in result.stderr
    assert re.search(r"\(.+\)$", lines[0]), "the line ends with the fix in parentheses"
    return lines[0]


@pytest.mark.parametrize("args, code, message", [
    (["vehicles", "x", "--status", "bogus"], 2, "use active, removed or all"),
    (["worker", "-Q", "bogus"], 2, "unknown queue 'bogus'; use priority, scheduled, "
                                    "priority.render or scheduled.render"),
    (["worker", "-Q", "priority", "-Q", "nope"], 2, "or scheduled.render"),
    (["jobs", "list", "--state", "bogus"], 2, "unknown state 'bogus'; use one of queued"),
    (["dlq", "replay"], 2, "give a dead job's id or --dealer, not both or neither"),
    (["dlq", "replay", "7", "--dealer", "x"], 2, "not both or neither"),
    (["api", "--workers", "0"], 2, "--workers"),
    (["schedule", "set", "x", "1s"], 1, "interval 1 s is shorter than a minute (give 1m"),
    # the fetch fails (nothing listens on port 9); `detect` has no --platform to suggest
    (["detect", "http://127.0.0.1:9/inventory/"], 1, "(check the URL, or save the page"),
    (["vin"], 2, "Missing argument 'VIN'"),  # was 'numbers', the parameter's name
])
def test_bad_arguments_exit_2_and_other_errors_1_in_one_line(args, code, message):
    result = run(*args)
    assert result.returncode == code, result.stderr
    assert "--platform" not in assert_one_error_line(result, message)
    assert not result.stdout


def test_dealers_add_list_and_vehicles_round_trip(db):
    added = run("dealers", "add", "acme-motors", "--name", "Acme Motors", "--url",
                "https://acme.test/", "--platform", "generic")
    assert added.returncode == 0, added.stderr
    again = run("dealers", "add", "acme-motors", "--name", "Acme", "--url",
                "https://acme.test/", "--platform", "generic")
    assert again.returncode == 1 and "already exists" in again.stderr
    listing = run("dealers", "list")
    assert "acme-motors" in listing.stdout and "Acme Motors" in listing.stdout
    vehicles = run("vehicles", "acme-motors")
    assert vehicles.returncode == 0 and "0 vehicle(s)" in vehicles.stdout


def test_extract_prints_json_lines_and_stores_nothing(db):
    page = ROOT / "fixtures/sites/generic/cases/graph.html"
    result = run("extract", str(page), "--url", "https://maple.test/civic")
    assert result.returncode == 0, result.stderr
    import json

    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["vin"] for r in rows] == ["19XFC2F7XME104512"]
    assert rows[0]["source"] == "https://maple.test/civic"
    assert "inventory: 1 item(s)" in result.stderr
    assert db.execute("SELECT count(*) AS n FROM vehicles").fetchone()["n"] == 0


def test_crawl_command_shows_progress_and_a_summary(db, site):
    base = site("generic")
    assert run("dealers", "add", "maple", "--name", "Maple", "--url", base + "/inventory/",
               "--platform", "generic").returncode == 0
    result = run("crawl", "maple")
    assert result.returncode == 0, result.stderr
    assert "Run summary" in result.stdout and "succeeded" in result.stdout
    bar = next(ln for ln in result.stdout.splitlines() if "crawl maple" in ln)
    assert re.search(r"rejected 1 \d:\d\d:\d\d$", bar.rstrip()), bar  # not cut at 80 columns
    table = run("vehicles", "maple")
    assert "10 vehicle(s)" in table.stdout and "19XFC2F7XME104512" in table.stdout
    # `jobs show` names the crawl's log, kept apart per database in the shared data dir
    from crawler.crawl_runner import log_path

    job_id = db.execute("SELECT id FROM jobs").fetchone()["id"]
    shown = run("jobs", "show", str(job_id))
    assert str(log_path(job_id)) in re.sub(r"[\s│]", "", shown.stdout), shown.stdout
    assert "Dumping Scrapy stats" in log_path(job_id).read_text()
    # its times to the second, in UTC, as `jobs list` shows them (not 08:10:05.123456+00:00)
    times = dict(re.findall(r"│ (created|started|finished)\s+│ (\S+ \S+)", shown.stdout))
    assert set(times) == {"created", "started", "finished"}, shown.stdout
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", t) for t in times.values()), times


def test_a_failed_run_exits_non_zero_and_its_summary_names_the_fix(db):
    assert run("dealers", "add", "acme-motors", "--name", "Acme Motors", "--url",
               "https://acme.test/", "--platform", "generic").returncode == 0
    # 127.0.0.2 is loopback but not on the suite's allow list: the fetch is refused
    result = run("ingest", "acme-motors", "http://127.0.0.2:9/feed.csv")
    assert result.returncode == 1, result.stdout[-2000:]
    assert "failed" in result.stdout and "Traceback" not in result.stderr
    flat = re.sub(r"[\s│]", "", result.stdout)  # the summary table wraps long values
    assert "aloopbackaddress(listthehostornetworkinFORECOURT_ALLOW_PRIVATE_HOSTS" in flat
    job = db.execute("SELECT state, error FROM jobs").fetchone()
    assert job["state"] == "failed" and "FORECOURT_ALLOW_PRIVATE_HOSTS" in job["error"]


def _heartbeaten(db, seconds: float, tries: int = 120):
    """The session's one job once it has been heartbeaten `seconds` after it started (or as
    it stands after `tries` quarter-seconds)."""
    import time

    job = None
    for _ in range(tries):
        job = db.execute("SELECT * FROM jobs").fetchone()
        if job and job["heartbeat_at"] and job["started_at"] and \
                (job["heartbeat_at"] - job["started_at"]).total_seconds() > seconds:
            break
        time.sleep(0.25)
    return job


def _stop(server) -> None:
    server.stopping.set()  # releases hanging requests
    server.shutdown()
    server.server_close()


def _clean_up(cli, server, monkeypatch) -> None:
    """After a heartbeat test: the CLI, the fixture server and the reaper setting gone."""
    from crawler.config import reset_settings

    if cli.poll() is None:
        cli.kill()
    _stop(server)
    monkeypatch.delenv("FORECOURT_JOB_REAP_AFTER_S", raising=False)
    reset_settings()


def test_a_crawl_run_from_the_cli_heartbeats_its_job_and_can_be_cancelled(db, tmp_path,
                                                                           monkeypatch):
    """A live CLI crawl is never taken for abandoned (and run again beside itself by a
    worker); `forecourt jobs cancel` stops it like a worker's."""
    import json
    import shutil

    from crawler import fixture_server
    from crawler.config import reset_settings
    from crawler.db import dealers as dealers_db
    from crawler.db import job_ends as ends_db
    from crawler.db import jobs as jobs_db
    from jobs import reaper

    root = tmp_path / "site"
    shutil.copytree(ROOT / "fixtures/sites/generic", root)
    (root / "routes.json").write_text(json.dumps({"/inventory/": {"hang": True}}))
    server = fixture_server.serve(root)
    dealers_db.create(db, slug="hangs", name="Hangs", platform="generic",
                      website_url=fixture_server.base_url(server) + "/inventory/",
                      settings={"scrapy": {"DOWNLOAD_TIMEOUT": 300, "RETRY_TIMES": 0}})
    cli = subprocess.Popen([FORECOURT, "crawl", "hangs"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    try:
        job = _heartbeaten(db, 3)
        assert job["state"] == "running" and job["worker"].startswith("cli@"), job
        assert (job["heartbeat_at"] - job["started_at"]).total_seconds() > 3, \
            "a CLI crawl whose pages hang must still heartbeat its job"
        monkeypatch.setenv("FORECOURT_JOB_REAP_AFTER_S", "2")
        reset_settings()
        assert reaper.reap(db)["requeued"] == []  # alive: not the reaper's to retry
        ends_db.request_cancel(db, job["id"])
        out, err = cli.communicate(timeout=60)
    finally:
        _clean_up(cli, server, monkeypatch)
    assert cli.returncode == 1, err
    assert jobs_db.get(db, job["id"]).state == "cancelled" and "cancelled" in out


def _ingest_of_a_silent_feed(db, tmp_path, env: dict[str, str]):
    """(fixture server, CLI process): `forecourt ingest` of a feed URL whose server accepts
    the connection and never answers, run with `env` added."""
    import json
    import os

    from crawler import fixture_server
    from crawler.db import dealers as dealers_db

    (tmp_path / "feed.csv").write_text("VIN,Make\n")
    (tmp_path / "routes.json").write_text(json.dumps({"/feed.csv": {"hang": True}}))
    server = fixture_server.serve(tmp_path)
    dealers_db.create(db, slug="slow-feed", name="Slow Feed")
    cli = subprocess.Popen([FORECOURT, "ingest", "slow-feed",
                            fixture_server.base_url(server) + "/feed.csv"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env={**os.environ, **env})
    return server, cli


def test_an_ingest_run_from_the_cli_heartbeats_its_job_and_ctrl_c_settles_it(db, tmp_path,
                                                                              monkeypatch):
    import signal

    from crawler.config import reset_settings
    from crawler.db import jobs as jobs_db
    from jobs import reaper

    # a short read timeout: should the signal land on a thread other than the one reading,
    # Python acts on it only once that read returns
    server, cli = _ingest_of_a_silent_feed(db, tmp_path, {
        "FORECOURT_FEED_FETCH_TIMEOUT_S": "5",
        "FORECOURT_FEED_FETCH_ATTEMPTS": "1000",  # until Ctrl-C
        "FORECOURT_FEED_FETCH_BACKOFF_S": "0.1"})
    try:
        job = _heartbeaten(db, 3)
        assert (job["heartbeat_at"] - job["started_at"]).total_seconds() > 3, \
            "an ingest waiting on a slow feed must still heartbeat its job"
        monkeypatch.setenv("FORECOURT_JOB_REAP_AFTER_S", "2")
        reset_settings()
        assert reaper.reap(db)["requeued"] == []
        cli.send_signal(signal.SIGINT)  # Ctrl-C at the terminal
        out, err = cli.communicate(timeout=60)
    finally:
        _clean_up(cli, server, monkeypatch)
    assert cli.returncode == 130 and err.strip().splitlines()[-1].startswith("error: interrupted")
    settled = jobs_db.get(db, job["id"])
    assert settled.state == "cancelled" and settled.error == "interrupted at the terminal"


def test_a_second_ctrl_c_stops_an_ingest_at_once(db, tmp_path, monkeypatch):
    """The first Ctrl-C stops at the next chunk or retry (a read of a silent server waits
    for its timeout, here 60 s); the second does not wait for it."""
    import signal
    import time

    from crawler.db import jobs as jobs_db

    server, cli = _ingest_of_a_silent_feed(db, tmp_path,
                                           {"FORECOURT_FEED_FETCH_TIMEOUT_S": "60"})
    try:
        job = _heartbeaten(db, 1)
        cli.send_signal(signal.SIGINT)
        time.sleep(1)
        assert cli.poll() is None  # stopping: waiting for the read to return
        cli.send_signal(signal.SIGINT)
        out, err = cli.communicate(timeout=30)  # well before the 60 s read timeout
    finally:
        _clean_up(cli, server, monkeypatch)
    assert cli.returncode == 130 and err.strip().splitlines()[-1].startswith("error: interrupted")
    settled = jobs_db.get(db, job["id"])
    assert settled.state == "cancelled" and settled.error == "interrupted at the terminal"


def test_history_shows_prices_as_money_and_missing_values_as_a_dash():
    from crawler.cli.history import _value

    assert _value({"price": 24995.0, "availability": None}) == "price 24,995, availability -"
    assert _value({"price": 24995.5}) == "price 24,995.50"
    assert _value({"status": "removed"}) == "status removed"


def test_every_command_shows_a_price_the_same_way():
    from decimal import Decimal

    from crawler.cli.common import price_text

    assert [price_text(p) for p in (Decimal("24995.00"), Decimal("24995.50"), 24995.0, 950)] \
        == ["24,995", "24,995.50", "24,995", "950"]


def test_worker_lets_a_running_crawl_reach_its_time_limit_on_sigterm(db, monkeypatch):
    """Dramatiq's default stops a worker's jobs after 10 minutes of SIGTERM; a crawl may
    run 30 (stopped mid-way, it is redelivered and starts over)."""
    import os

    import dramatiq.cli
    import dramatiq.worker

    from crawler.cli import main
    from crawler.config import reset_settings

    seen = {}
    monkeypatch.setattr(dramatiq.cli, "main", lambda args: seen.setdefault("args", args) and 0)
    # the command sets these for its worker processes: restore them after
    monkeypatch.setattr(dramatiq.worker, "QUEUE_PREFETCH", dramatiq.worker.QUEUE_PREFETCH)
    for name in ("DATABASE_URL", "REDIS_URL", "FORECOURT_WORKER_THREADS"):
        monkeypatch.setenv(name, os.environ.get(name, ""))
        if not os.environ[name]:
            monkeypatch.delenv(name)
    monkeypatch.setenv("FORECOURT_CRAWL_TIME_LIMIT_S", "2400")
    reset_settings()
    try:
        assert main(["worker", "--processes", "1"]) == 0
    finally:
        monkeypatch.delenv("FORECOURT_CRAWL_TIME_LIMIT_S")
        reset_settings()
    assert seen["args"].worker_shutdown_timeout == (2400 + 60) * 1000
    assert seen["args"].processes == 1


def test_schedule_intervals_are_bounded_to_a_minute_through_366_days(db):
    from crawler.db import dealers as dealers_db

    dealer = dealers_db.create(db, slug="acme-motors", name="Acme Motors",
                               website_url="https://acme.test/")
    # 99999999999h overflowed the integer column: a psycopg traceback, nothing stored
    for spec, message in (("99999999999h", "longer than 366 days"), ("367d", "longer than"),
                          ("1s", "shorter than a minute"), ("0m", "shorter than a minute")):
        result = run("schedule", "set", "acme-motors", spec)
        assert result.returncode == 1, result.stderr
        assert_one_error_line(result, message)
    assert dealers_db.get(db, "acme-motors").schedule_interval_s is None
    for spec, seconds in (("1m", 60), ("366d", 366 * 86_400)):
        result = run("schedule", "set", "acme-motors", spec)
        assert result.returncode == 0, result.stderr
        assert dealers_db.get(db, dealer.slug).schedule_interval_s == seconds


def test_schedule_set_keeps_the_dealers_timezone_unless_given_one(db):
    """A Chicago dealer moved from 03:00 to 04:00 without --tz silently became 04:00 UTC
    (23:00 in Chicago, in the middle of the dealer's evening)."""
    from crawler.db import dealers as dealers_db

    dealers_db.create(db, slug="acme-motors", name="Acme Motors", website_url="https://acme.test/")
    assert run("schedule", "set", "acme-motors", "0 3 * * *", "--tz", "America/Chicago"
               ).returncode == 0
    result = run("schedule", "set", "acme-motors", "0 4 * * *")
    assert result.returncode == 0, result.stderr
    assert "(America/Chicago)" in result.stdout
    dealer = dealers_db.get(db, "acme-motors")
    assert (dealer.schedule_cron, dealer.schedule_tz) == ("0 4 * * *", "America/Chicago")
    assert run("schedule", "set", "acme-motors", "0 4 * * *", "--tz", "UTC").returncode == 0
    assert dealers_db.get(db, "acme-motors").schedule_tz == "UTC"


def test_extract_record_never_overwrites_the_saved_page(tmp_path):
    import json

    cases = ROOT / "fixtures/sites/dealercom/cases"
    response = (cases / "getinventory-start-0.api").read_text()
    page = tmp_path / "getinventory-start-0.json"
    page.write_text(response)
    url = json.loads((cases / "getinventory-start-0.json").read_text())["url"]
    args = ("--url", url, "--platform", "dealercom", "--record")
    result = run("extract", str(page), *args)
    assert result.returncode == 1 and not result.stdout
    assert_one_error_line(result, "would overwrite the page")
    assert "getinventory-start-0.api" in result.stderr  # the saved-page name to use
    assert page.read_text() == response
    # saved as the convention names a JSON response, the result is recorded beside it
    page.rename(tmp_path / "getinventory-start-0.api")
    result = run("extract", str(tmp_path / "getinventory-start-0.api"), *args)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "getinventory-start-0.api").read_text() == response
    assert json.loads(page.read_text()) == json.loads(
        (cases / "getinventory-start-0.json").read_text())


def test_ingest_of_an_empty_feed_shows_0_rows_as_its_summary_does(db, tmp_path):
    from crawler.db import dealers as dealers_db

    dealers_db.create(db, slug="empty-feed", name="Empty Feed")
    feed = tmp_path / "feed.csv"
    feed.write_text("vin,year,make,model,price\n")
    result = run("ingest", "empty-feed", str(feed))
    assert result.returncode == 1 and "no vehicles found" in result.stdout  # a failed run
    bar = next(ln for ln in result.stdout.splitlines() if "ingest empty-feed" in ln)
    assert " 0 rows " in bar and " 1 rows" not in bar, bar
    summary = next(ln for ln in result.stdout.splitlines() if ln.strip("│ ").startswith("rows"))
    assert summary.split() == ["│", "rows", "│", "0", "│"], summary


def test_worker_queue_names_are_the_actors_queues():
    """Every queue `forecourt worker --queue` accepts (jobs.queues) has an actor on it."""
    from jobs import actors, queues

    declared = {actor.queue_name for actor in actors.ACTORS.values()}
    assert set(queues.ALL) == declared, (queues.ALL, declared)


def test_following_a_queued_job_does_not_end_at_a_failure_its_worker_retries(db, monkeypatch):
    """A worker's attempt is settled `failed` by the crawl child; the worker requeues it a
    heartbeat later. `crawl --queue --wait` and `jobs show --follow` reported that moment
    as the end ("failed", exit 1) while the job went on to its next attempt."""
    from crawler.cli import jobs as cli_jobs
    from crawler.db import dealers as dealers_db
    from crawler.db import job_queue as queue_db
    from crawler.db import jobs as jobs_db

    dealer = dealers_db.create(db, slug="flaky", name="Flaky", website_url="https://f.test/")
    job, _ = jobs_db.create_or_get_active(db, dealer.id, "crawl", "operator")
    queue_db.set_message(db, job.id, "priority", "m1")
    queue_db.claim(db, job.id, "w1", 6, "m1")
    jobs_db.finish(db, job.id, "failed", counters={}, error_kind="failed",
                   error="listing page https://f.test/ failed: HTTP 503")
    # the worker's next moves, one per poll of the follower
    moves = [lambda: queue_db.requeue(db, job.id, 0),
             lambda: queue_db.claim(db, job.id, "w1", 6),
             lambda: jobs_db.finish(db, job.id, "succeeded", counters={"items": 3})]
    monkeypatch.setattr(cli_jobs.time, "sleep", lambda _s: moves.pop(0)() if moves else None)
    assert cli_jobs.follow(db, job.id, "crawl flaky", interval_s=0).state == "succeeded"
    # a failure nobody will act on ends the follow at once: run at the terminal (no queue),
    # or permanent
    for queue, error in ((None, "listing page https://f.test/ failed: HTTP 503"),
                         ("priority", "not_found listing page https://f.test/ (HTTP 404)")):
        db.execute("UPDATE jobs SET state = 'failed', queue = %s, error = %s, report = NULL "
                   "WHERE id = %s", (queue, error, job.id))
        assert cli_jobs.follow(db, job.id, "crawl flaky", interval_s=0).state == "failed"


def test_extract_of_a_url_names_an_error_answer_and_checks_its_redirects(db, site, tmp_path):
    """A page answering 500 printed "# other: 0 item(s) from URL", the status nowhere; and
    a redirect was followed to any address, unlike `detect` and crawls."""
    import json

    (tmp_path / "routes.json").write_text(json.dumps({
        "/broken": {"status": 500}, "/away": {"redirect": "http://127.0.0.2:9/inventory/"}}))
    base = site(tmp_path)
    broken = run("extract", base + "/broken")
    assert broken.returncode == 0 and not broken.stdout, broken.stderr
    assert broken.stderr.strip() == f"# other: 0 item(s) from {base}/broken (HTTP 500)"
    away = run("extract", base + "/away")
    assert away.returncode == 1, away.stderr
    assert_one_error_line(away, "127.0.0.2")
    assert "loopback" in away.stderr and "FORECOURT_ALLOW_PRIVATE_HOSTS" in away.stderr


def test_a_downloaded_feed_is_named_by_its_url_in_errors_and_the_summary(db, site, tmp_path):
    """A feed URL was downloaded to a temporary name that every message then used:
    "feed-1y0l8s_q.zip is a corrupt zip archive", "file feed-wsckkzdf.csv"."""
    import shutil

    from crawler.config import get_settings
    from crawler.db import dealers as dealers_db

    (tmp_path / "stock.zip").write_bytes(b"PK\x03\x04 not a zip")
    shutil.copy(ROOT / "fixtures/feeds/harbor-city-auto.csv", tmp_path / "stock list.csv")
    base = site(tmp_path)
    dealers_db.create(db, slug="harbor", name="Harbor")
    bad = run("ingest", "harbor", base + "/stock.zip")
    assert bad.returncode == 1
    assert "stock.zip is a corrupt zip archive" in re.sub(r"[\s│]+", " ", bad.stdout)
    # the summary's feed row named the download ("file stock_list.csv") as if a file had
    # been given: it names the URL, its credentials hidden as `jobs show` hides them
    secret = base.replace("http://", "http://feeds:hunter2@") + "/stock%20list.csv?token=s3"
    good = run("ingest", "harbor", secret)
    assert good.returncode == 0, good.stdout[-2000:]
    feed = re.sub(r"\s*│\s*", " ", next(line for line in good.stdout.splitlines()
                                        if line.startswith("│ feed")))
    assert feed.startswith(" feed url " + base.replace("http://", "http://feeds:***@")
                           + "/stock%20list.csv?token=***, format csv"), feed
    assert "hunter2" not in good.stdout and "s3" not in good.stdout.replace("/s3", "")
    assert "file stock_list.csv" not in good.stdout
    assert not list((get_settings().data_dir / "feeds").glob("feed-*"))  # nothing left
    from ingest.fetch import _file_name

    assert _file_name("https://f.test/export?id=3", "text/csv") == "export.csv"
    assert _file_name("https://f.test/", None) == "feed"
    assert _file_name("https://f.test/..%2F..%2Fetc%2Fpasswd", None) == "_.._etc_passwd"


def test_db_stop_says_when_no_embedded_server_was_running(tmp_path):
    """`forecourt db stop` said "embedded servers stopped" whatever it found, also with
    DATABASE_URL and REDIS_URL naming other servers, where it stops nothing."""
    import os

    env = dict(os.environ, FORECOURT_DATA_DIR=str(tmp_path))
    result = subprocess.run([FORECOURT, "db", "stop"], capture_output=True, text=True,
                            timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == f"no embedded server was running in {tmp_path}".split()


def test_db_status_says_what_runs_and_starts_nothing(tmp_path):
    """There was no way to ask whether the embedded servers run: `db url` starts them."""
    import os

    env = dict(os.environ, FORECOURT_DATA_DIR=str(tmp_path / "data"))
    env.pop("REDIS_URL", None)
    result = subprocess.run([FORECOURT, "db", "status"], capture_output=True, text=True,
                            timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1:] == [
        "PostgreSQL: not running (not used: DATABASE_URL is set)", "Redis: not running"]
    assert not (tmp_path / "data").exists()


def test_jobs_list_cuts_a_long_error_visibly(db):
    """`jobs list` cut errors at 60 characters mid-word and without a mark: "...failed:
    Conne", read as the whole error."""
    from rich.console import Console

    from crawler.cli.jobs import jobs_table
    from crawler.db import dealers as dealers_db
    from crawler.db import jobs as jobs_db

    dealer = dealers_db.create(db, slug="gone", name="Gone", website_url="https://g.test/")
    job, _ = jobs_db.create_or_get_active(db, dealer.id, "crawl", "operator")
    error = "listing page https://g.test/inventory/ failed: Connection was refused"
    jobs_db.finish(db, job.id, "failed", counters={}, error=error, error_kind="failed")
    console = Console(width=300, file=io.StringIO(), color_system=None)
    console.print(jobs_table(db, [jobs_db.get(db, job.id)]))
    assert error[:59] + "…" in console.file.getvalue()
    # the table names the dealer by its slug, read for the jobs shown only
    assert " gone " in console.file.getvalue()
    assert dealers_db.slugs(db, [dealer.id, dealer.id + 1000]) == {dealer.id: "gone"}


def test_a_job_queued_a_while_under_follow_hints_at_a_missing_worker():
    """`crawl --queue --wait` with no worker running waited silently for ever."""
    import time as _time
    from types import SimpleNamespace

    from crawler.cli.jobs import WAITING_HINT_AFTER_S, waiting_hint

    long_ago = _time.monotonic() - WAITING_HINT_AFTER_S - 1
    assert "forecourt worker" in waiting_hint(SimpleNamespace(state="queued"), long_ago)
    assert waiting_hint(SimpleNamespace(state="queued"), _time.monotonic()) == ""
    assert waiting_hint(SimpleNamespace(state="running"), long_ago) == ""


def test_a_running_job_whose_heartbeat_stopped_under_follow_hints_at_a_dead_worker(
        monkeypatch):
    """A worker killed with -9 (or cut off from the database) left its job `running`:
    `jobs show --follow` and `crawl --queue --wait` showed "running/crawling" for ever, with
    no worker alive to take it over and nothing saying so."""
    import datetime as dt
    from types import SimpleNamespace

    from crawler.cli import jobs as cli_jobs
    from crawler.config import get_settings

    clock = [1000.0]
    monkeypatch.setattr(cli_jobs.time, "monotonic", lambda: clock[0])
    beat = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    job = SimpleNamespace(id=7, state="running", heartbeat_at=beat)
    beats: dict = {}
    assert cli_jobs.stalled_hint(job, beats) == ""
    clock[0] += get_settings().job_stale_after_s / 2
    assert cli_jobs.stalled_hint(job, beats) == ""  # a beat is not late yet
    clock[0] += get_settings().job_stale_after_s
    hint = cli_jobs.stalled_hint(job, beats)
    assert "no heartbeat for" in hint and "forecourt worker" in hint, hint
    # a live worker beats: the heartbeat moves and the clock starts again
    job.heartbeat_at = beat + dt.timedelta(seconds=1)
    assert cli_jobs.stalled_hint(job, beats) == ""
    clock[0] += get_settings().job_stale_after_s / 2
    assert cli_jobs.stalled_hint(job, beats) == ""
    # only a running job has a heartbeat to miss
    clock[0] += 100
    assert cli_jobs.stalled_hint(SimpleNamespace(id=8, state="queued", heartbeat_at=None),
                                 beats) == ""


def test_ctrl_c_while_following_a_job_says_the_job_goes_on(db, monkeypatch, capsys):
    """Ctrl-C in `jobs show --follow` or `crawl --queue --wait` printed "error:
    interrupted", the same line as a crawl run here that Ctrl-C cancels: nothing said that
    the job a worker runs (or will) goes on, nor how to follow or stop it."""
    from crawler import cli
    from crawler.cli import jobs as cli_jobs
    from crawler.db import dealers as dealers_db
    from crawler.db import job_queue as queue_db
    from crawler.db import jobs as jobs_db

    dealer = dealers_db.create(db, slug="waits", name="Waits", website_url="https://w.test/")
    job, _ = jobs_db.create_or_get_active(db, dealer.id, "crawl", "operator")
    queue_db.set_message(db, job.id, "priority", "m1")

    def ctrl_c(_s):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_jobs.time, "sleep", ctrl_c)
    assert cli.main(["jobs", "show", str(job.id), "--follow"]) == 130
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: stopped following job {job.id}"), lines
    assert f"forecourt jobs cancel {job.id}" in lines[0] and "goes on" in lines[0], lines[0]
    assert jobs_db.get(db, job.id).state == "queued"  # untouched


def test_schedule_list_says_why_a_failing_dealers_next_run_is_far_off():
    """After failures in a row the scheduler backs off; `schedule list` showed a next run
    40 minutes away with no reason."""
    from crawler.cli.schedule import failing

    assert failing(0) == "-"
    assert failing(1) == "1 in a row"
    assert failing(2) == "2 in a row, next run held back 5 min"
    assert failing(4) == "4 in a row, next run held back 20 min"


def test_extract_of_a_javascript_page_renders_it_as_a_crawl_would(site):
    """`extract URL --platform javascript` fetched the page plainly: the script shell of
    a JavaScript site gave "other: 0 item(s)", while its crawl found three vehicles."""
    import json

    base = site("javascript")
    result = run("extract", base + "/inventory/", "--platform", "javascript")
    assert result.returncode == 0, result.stderr
    vins = [json.loads(line)["vin"] for line in result.stdout.splitlines()]
    assert vins == ["1FMCU9J92MUA22451", "JTMB1RFV8KD016732", "5YJ3E1EA9LF612208"]
    assert result.stderr.split() == \
        f"# inventory: 3 item(s) from {base}/inventory/ (rendered)".split()
    plain = run("extract", base + "/inventory/", "--platform", "javascript", "--no-render")
    assert plain.stdout == "" and "# other: 0 item(s)" in plain.stderr


def test_demo_port_in_use_names_the_port_it_tried_and_the_setting_that_moves_it(db):
    """With FORECOURT_DEMO_PORT set, a port in use was reported as fixtures/demo.toml's port
    (8311, not the one tried), and the fix offered was editing that tracked file."""
    import os
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = dict(os.environ, FORECOURT_DEMO_PORT=str(port))
        result = subprocess.run([FORECOURT, "demo"], capture_output=True, text=True,
                                timeout=120, env=env)
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert f"cannot serve fixture site on port {port}:" in result.stderr
    assert "FORECOURT_DEMO_PORT" in result.stderr


def test_an_unexpected_error_in_an_ingest_settles_its_job_failed_in_one_line(
        db, monkeypatch, capsys):
    """A bug inside the feed loop (a mapping whose `defaults` was not a table, before
    mappings were checked, raised a TypeError in it) printed a traceback and left the job
    `running` until the reaper's stale limit, every ingest of the dealer refused meanwhile.
    It ends the job failed, with the error in its history and nothing removed, in one
    `error:` line naming where to look. (The bug is injected: none is known now.)"""
    from crawler import cli
    from crawler.db import dealers as dealers_db
    from crawler.db import jobs as jobs_db
    from ingest import mapping

    feed = str(ROOT / "fixtures/feeds/harbor-city-auto.csv")
    dealers_db.create(db, slug="harbor", name="Harbor")
    assert cli.main(["ingest", "harbor", feed]) == 0
    active = db.execute("SELECT count(*) AS n FROM vehicles WHERE status = 'active'"
                        ).fetchone()["n"]
    capsys.readouterr()
    with monkeypatch.context() as patch:
        def bug(self, row, source, **extra):
            raise TypeError("'int' object is not a mapping")

        patch.setattr(mapping.Plan, "item", bug)
        assert cli.main(["ingest", "harbor", feed, "--force"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    job = db.execute("SELECT * FROM jobs ORDER BY id DESC LIMIT 1").fetchone()
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "TypeError" in lines[0] and f"forecourt jobs show {job['id']}" in lines[0], lines
    settled = jobs_db.get(db, job["id"])
    assert settled.state == "failed" and settled.finished_at is not None
    assert "TypeError" in settled.error
    assert [e["kind"] for e in settled.errors] == ["crash"], settled.errors
    assert "TypeError" in settled.errors[0]["error"]
    assert db.execute("SELECT count(*) AS n FROM vehicles WHERE status = 'active'"
                      ).fetchone()["n"] == active  # nothing removed
    shown = run("jobs", "show", str(job["id"]))
    log = next(ln for ln in shown.stdout.splitlines() if " log " in ln)
    path = Path(re.sub(r"[\s│]", "", log.split(" log ", 1)[1]))
    assert "TypeError" in path.read_text() and "Traceback" in path.read_text()
    again = run("ingest", "harbor", feed)  # not refused as "already has job ... running"
    assert again.returncode == 0, again.stderr


def test_a_crawl_here_whose_log_cannot_be_written_fails_its_job_in_one_line(db, site):
    """`forecourt crawl` settled such a job failed but re-raised the OSError: a traceback."""
    from crawler.crawl_runner import log_path
    from crawler.db import dealers as dealers_db

    dealers_db.create(db, slug="nolog", name="No log", website_url=site("generic") + "/",
                      platform="generic")
    folder = log_path(1).parent  # every job's log goes there
    moved = folder.with_name(folder.name + ".moved")
    folder.parent.mkdir(parents=True, exist_ok=True)
    if folder.is_dir():
        folder.rename(moved)
    folder.write_text("a file where the crawl logs' folder should be")
    try:
        result = run("crawl", "nolog")
    finally:
        folder.unlink()
        if moved.is_dir():
            moved.rename(folder)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    lines = [ln for ln in result.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: crawl job "), result.stderr
    failed = db.execute("SELECT * FROM jobs ORDER BY id DESC LIMIT 1").fetchone()
    assert failed["state"] == "failed" and failed["error_kind"] == "crash", failed
    assert f"forecourt jobs show {failed['id']}" in lines[0]


def test_any_other_unexpected_error_is_one_line_with_the_traceback_in_a_file(
        monkeypatch, capsys):
    from crawler import cli
    from crawler.db import dealers as dealers_db

    def bug(*_a, **_k):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(dealers_db, "list_all", bug)
    assert cli.main(["dealers", "list"]) == 1
    err = capsys.readouterr().err
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: unexpected error: RuntimeError: boom"), lines
    where = re.search(r"the traceback is in (\S+?);", lines[0])
    assert where, lines[0]
    text = Path(where.group(1)).read_text()
    assert "Traceback" in text and "RuntimeError: boom" in text


def test_extract_of_a_page_with_no_vehicles_says_where_a_crawl_finds_them(site):
    """`extract` of a Dealer.com page (vehicles from the platform's inventory API) or of a
    JavaScript shell printed "# other: 0 item(s)" and nothing else; `detect` knew why."""
    dealercom = site("dealercom")
    api = run("extract", dealercom + "/all-inventory/index.htm")
    assert api.returncode == 0 and not api.stdout, api.stderr
    lines = api.stderr.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("# other: 0 item(s)"), lines
    assert lines[1].startswith("# hint: ") and "getInventory API" in lines[1], lines
    assert "forecourt crawl" in lines[1] and "forecourt detect" in lines[1], lines
    shell = run("extract", site("javascript") + "/inventory/")
    lines = shell.stderr.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("# other: 0 item(s)"), lines
    assert lines[1].startswith("# hint: ") and "JavaScript" in lines[1], lines
    assert "--render" in lines[1], lines
    saved = run("extract", str(ROOT / "fixtures/sites/javascript/inventory/index.html"),
                "--url", "https://js.test/inventory/")
    assert "--render" in saved.stderr and "https://js.test/inventory/" in saved.stderr, \
        saved.stderr


def test_schedule_list_shows_times_to_the_second_and_says_when_no_scheduler_runs(db):
    """`schedule list` showed next run `-` until a scheduler first ran, and nothing said no
    scheduler was running; its times had microseconds."""
    from datetime import UTC, datetime

    from crawler.db import connect
    from crawler.db import dealers as dealers_db
    from crawler.db import schedules as schedules_db

    new = dealers_db.create(db, slug="fresh", name="Fresh", website_url="https://f.test/",
                            schedule_interval_s=3600)
    ran = dealers_db.create(db, slug="ran", name="Ran", website_url="https://r.test/",
                            schedule_interval_s=3600)
    schedules_db.set_next(db, ran.id, datetime(2031, 5, 6, 7, 8, 9, 123456, UTC), None)
    alone = run("schedule", "list")
    assert alone.returncode == 0, alone.stderr
    assert ".123456" not in alone.stdout and re.search(r"2031-05-0\d \d\d:\d8:09 ", alone.stdout)
    lines = alone.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: no scheduler is running"), lines
    assert "1 with no next run yet" in lines[0] and "(run `forecourt scheduler`)" in lines[0]
    with connect() as leader:  # a live scheduler holds the leader lock
        assert schedules_db.try_lead(leader)
        led = run("schedule", "list")
    assert led.returncode == 0 and "warning" not in led.stderr, led.stderr
    assert "next tick" in led.stdout and new.slug in led.stdout, led.stdout


def test_history_of_a_vin_with_no_events_says_so_and_where_the_vin_is(db, capsys):
    """`history <slug> --vin X` for a VIN with no events printed an empty table, exit 0, and
    no word on whether the dealer has that VIN at all."""
    from crawler.cli import main
    from crawler.db import dealers as dealers_db

    dealers_db.create(db, slug="harbor", name="Harbor")
    dealers_db.create(db, slug="other", name="Other")
    assert main(["ingest", "harbor", str(ROOT / "fixtures/feeds/harbor-city-auto.csv")]) == 0
    vin = db.execute("SELECT vin FROM vehicles ORDER BY vin LIMIT 1").fetchone()["vin"]
    capsys.readouterr()

    def history(*args: str) -> str:
        assert main(["history", *args]) == 0
        out = capsys.readouterr()
        assert "┏" not in out.out and not out.err, out  # a line, not an empty box
        return " ".join(out.out.split())

    elsewhere = history("other", "--vin", vin.lower())
    assert elsewhere.startswith(f"no events for VIN {vin} at other"), elsewhere
    assert "other has no vehicle with that VIN" in elsewhere, elsewhere
    assert f"`forecourt history harbor --vin {vin}`" in elsewhere, elsewhere
    nowhere = history("harbor", "--vin", "1HGCM82633A004352")
    assert nowhere == "no events for VIN 1HGCM82633A004352 at harbor (harbor has no vehicle " \
                      "with that VIN; see `forecourt vehicles harbor --status all`)", nowhere
    db.execute("DELETE FROM vehicle_events WHERE vin = %s", (vin,))
    kept = history("harbor", "--vin", vin)
    assert kept.startswith(f"no events for VIN {vin} at harbor (harbor has it, active"), kept
    assert history("other") == "no events at other"


def test_a_follower_waits_for_a_dead_workers_failure_as_long_as_the_reaper_might_act(
        monkeypatch):
    """A failure its worker did not act on (the worker died) ended `jobs show --follow` and
    `crawl --queue --wait` as "failed" after FORECOURT_JOB_STALE_AFTER_S (6 s), and the
    reaper retried the job a minute later. The follower now waits as long as the API shows
    such a job settling: twice FORECOURT_JOB_REAP_AFTER_S. A replayed one has ended."""
    import datetime

    from crawler.cli import jobs as cli_jobs
    from crawler.config import get_settings
    from crawler.models import Job

    clock = [1000.0]
    monkeypatch.setattr(cli_jobs.time, "monotonic", lambda: clock[0])
    job = Job(id=9, dealership_id=1, kind="crawl", trigger="api", state="failed",
              phase="done", attempts=1, queue="priority", error="listing page timed out",
              error_kind="transient:TimeoutError",
              created_at=datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC))
    seen: dict = {}
    assert not cli_jobs.ended(job, seen)
    clock[0] += get_settings().job_stale_after_s * 2
    assert not cli_jobs.ended(job, seen)  # the reaper has not had its turn yet
    clock[0] += get_settings().job_reap_after_s * 2
    assert cli_jobs.ended(job, seen)  # nobody acted: it is failed, as the API shows it
    assert cli_jobs.ended(job.model_copy(update={"replayed_as": 10}), {})


def test_jobs_show_says_where_a_queued_crawl_waits(db):
    """A crawl waiting on priority.render for a worker with Chromium showed `queue priority`,
    the job's own queue, as if any worker would take it."""
    from crawler.db import dealers as dealers_db
    from crawler.db import job_queue as queue_db
    from crawler.db import jobs as jobs_db

    dealer = dealers_db.create(db, slug="dawn", name="Dawn", platform="javascript",
                               website_url="http://127.0.0.1:9/inventory/")
    job, _ = jobs_db.create_or_get_active(db, dealer.id, "crawl", "operator")
    queue_db.set_message(db, job.id, "priority", "m1", render=True)
    shown = run("jobs", "show", str(job.id))
    assert shown.returncode == 0, shown.stderr
    rows = dict(re.findall(r"│ (queue|waiting for)\s+│ (.+?)\s+│", shown.stdout))
    assert rows == {"queue": "priority.render", "waiting for": "a worker with Chromium"}, \
        shown.stdout
    queue_db.set_message(db, job.id, "priority", "m2")  # back on its own queue
    rows = dict(re.findall(r"│ (queue|waiting for)\s+│ (.+?)\s+│",
                           run("jobs", "show", str(job.id)).stdout))
    assert rows == {"queue": "priority"}


def test_a_line_of_text_stays_one_line_however_long_when_piped(db, capsys, monkeypatch):
    """Piped or in a file the console is 160 columns wide, and it broke longer text lines
    into several: `forecourt db url` split a long URL, so `psql "$(forecourt db url)"`
    failed; messages naming a command to run split it in two. Tables keep their width."""
    import os

    from crawler.cli import main
    from crawler.db import dealers as dealers_db

    url = "postgresql://postgres@127.0.0.1:5432/postgres?application_name=cli-test" \
        + "&connect_timeout=10" * 12  # printed, not connected to
    assert len(url) > 200
    result = subprocess.run([FORECOURT, "db", "url"], capture_output=True, text=True,
                            timeout=120, env=dict(os.environ, DATABASE_URL=url))
    assert result.returncode == 0, result.stderr
    assert result.stdout == url + "\n"

    slug = "a-dealer-whose-slug-pushes-its-history-line-past-a-pipes-width"
    dealers_db.create(db, slug=slug, name="Long")
    capsys.readouterr()
    assert main(["history", slug, "--vin", "1HGCM82633A004352"]) == 0
    out = capsys.readouterr().out
    assert len(out) > 161 and out.count("\n") == 1, out


def test_a_run_summary_shows_an_error_without_a_verdict_as_the_error_alone():
    """A run that failed before a verdict (its site refused) showed "-: refused ..." in the
    summary's verdict column: a dash for no verdict, glued to the error."""
    from datetime import UTC, datetime

    from rich.console import Console

    from crawler.cli.render import summary_table
    from crawler.models import Job

    def cell(**fields) -> str:
        job = Job(id=9, dealership_id=1, kind="crawl", trigger="operator", state="failed",
                  created_at=datetime.now(UTC), **fields)
        out = Console(width=400, file=io.StringIO())
        out.print(summary_table([("acme", job)]))
        row = next(ln for ln in out.file.getvalue().splitlines() if "acme" in ln)
        return row.split("│")[-2].strip()

    assert cell(error="refused 127.0.0.1: a loopback address") == \
        "refused 127.0.0.1: a loopback address"
    assert cell(verdict="failed", error="reject rate 100%") == "failed: reject rate 100%"
    assert cell(verdict="healthy") == "healthy"
    assert cell() == "-"


def test_an_ingest_summary_names_how_the_feed_was_read_in_words():
    """The summary's feed row read "encoding utf-8, delimiter ,, rows_staged_in_workers
    50000": a comma delimiter lost in the list's own commas, an internal key as it is
    stored."""
    from datetime import UTC, datetime

    from rich.console import Console

    from crawler.cli.ingest import ingest_summary
    from crawler.models import Job

    report = {"feed": {"file": "big.csv", "format": "csv", "mapping": "homenet",
                       "encoding": "utf-8", "delimiter": ",", "rows_staged_in_workers": 50000}}
    job = Job(id=9, dealership_id=1, kind="feed", trigger="operator", state="succeeded",
              created_at=datetime.now(UTC), report=report)
    out = Console(width=400, file=io.StringIO())
    out.print(ingest_summary("big", job))
    row = next(ln for ln in out.file.getvalue().splitlines() if "│ feed" in ln)
    assert row.split("│")[2].strip() == (
        "file big.csv, format csv, mapping homenet, encoding utf-8, delimiter ',', "
        "50,000 rows staged in worker processes")
    report["feed"].update(delimiter="\t", rows_staged_in_workers=0)
    out = Console(width=400, file=io.StringIO())
    out.print(ingest_summary("big", job))
    assert "delimiter '\\t'" in out.file.getvalue()
    assert "staged" not in out.file.getvalue()


def test_a_schedule_interval_is_shown_as_it_is_given_not_in_seconds(db):
    """`schedule set X 6h` answered "X: every 21600 s", as `schedule list` and `dealers
    show` showed it: the operator's 6h to be worked out again."""
    from crawler.cli.render import interval_text
    from crawler.db import dealers as dealers_db

    assert [interval_text(s) for s in (60, 90, 1800, 21600, 86400, 90000, 366 * 86400)] == [
        "1m", "90s", "30m", "6h", "1d", "25h", "366d"]
    dealers_db.create(db, slug="acme-motors", name="Acme Motors",
                      website_url="https://acme.test/")
    result = run("schedule", "set", "acme-motors", "6h")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "acme-motors: every 6h\n"
    assert "│ every 6h " in run("schedule", "list").stdout
    assert "│ every 6h " in run("dealers", "show", "acme-motors").stdout


def test_fetching_a_page_says_what_it_waits_for_on_a_terminal(site, monkeypatch):
    """`dealers add` fetched the site to detect its platform without a word: against a site
    that did not answer, 20 s of silence (`detect` and `extract` of a URL too, 30 s for
    `extract`). On a terminal a spinner names the page; piped, nothing is added."""
    from rich.console import Console

    from crawler.cli import common
    from crawler.cli.detect import fetch_page
    from crawler.cli.extract import _fetch

    base = site("generic")
    shown = io.StringIO()
    monkeypatch.setattr(common, "err_console", Console(file=shown, force_terminal=True))
    fetch_page(f"{base}/")
    _fetch(f"{base}/inventory/")
    assert f"fetching {base}/ " in shown.getvalue(), shown.getvalue()
    assert f"fetching {base}/inventory/ " in shown.getvalue(), shown.getvalue()
    piped = io.StringIO()
    monkeypatch.setattr(common, "err_console", Console(file=piped, force_terminal=False))
    fetch_page(f"{base}/")
    assert piped.getvalue() == ""


def test_resuming_a_dealer_with_no_schedule_says_nothing_will_run(db):
    """`schedule resume` of a dealer that has no schedule answered "resumed", as if its runs
    would now come."""
    from crawler.db import dealers as dealers_db

    dealers_db.create(db, slug="acme-motors", name="Acme Motors",
                      website_url="https://acme.test/")
    result = run("schedule", "resume", "acme-motors")
    assert result.returncode == 0, result.stderr
    assert result.stdout == ("acme-motors: resumed; it has no schedule, so nothing runs "
                             "(give it one: `forecourt schedule set acme-motors 6h`)\n")
    assert run("schedule", "set", "acme-motors", "6h").returncode == 0
    assert run("schedule", "resume", "acme-motors").stdout == "acme-motors: resumed\n"
