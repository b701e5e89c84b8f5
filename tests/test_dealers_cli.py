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
