"""`forecourt vin` and `forecourt quality` as a user runs them (in-process, real database)."""

from __future__ import annotations

from crawler.cli import main
from crawler.db import dealers as dealers_db
from tests.integration.test_gate_runs import HONDAS, baseline, item, run


def test_vin_prints_the_decode_and_every_check(capsys):
    assert main(["vin", "kmtga4scdru227656", "2T36CRAV0TW10I008", "--make", "Hyundai",
                 "--year", "2024"]) == 0
    out = capsys.readouterr().out
    assert "Genesis" in out and "G80" in out and "Sedan/Saloon" in out
    assert "vin_make_mismatch" in out  # Hyundai stated, Genesis built
    assert "optional outside North America" in out  # wrong check digit, made in Korea
    assert "pre-production VIN" in out and "vin_placeholder" in out
    for check in ("syntax", "placeholder", "check digit", "model year code", "make",
                  "model year", "model", "body"):
        assert check in out
    assert "2 VIN(s), 2 with failed checks" in out


def test_vin_rejects_what_is_not_a_vin(capsys):
    assert main(["vin", "AAAAAAA:AAAAAAAAA"]) == 0
    out = capsys.readouterr().out
    assert "vin_invalid" in out or "vin_placeholder" in out
    assert "':'" in out


def test_vin_reports_an_empty_vin_as_missing(capsys):
    assert main(["vin", "", "ABC"]) == 0
    out = capsys.readouterr().out
    assert "VIN (missing)" in out and "missing: no VIN given" in out
    assert "not checked: no VIN" in out and "not checked: not 17 characters" in out
    assert "a real VIN's shape" not in out  # the placeholder check judged nothing
    assert "2 VIN(s), 2 with failed checks" in out


def test_quality_report_shows_verdict_reasons_coverage_and_worst(db, capsys):
    dealer = dealers_db.create(db, slug="honda-town", name="Honda Town",
                               website_url="https://honda.test/")
    baseline(db, dealer.id)
    bad = [item(r, price=None) for r in HONDAS[:45]]
    bad[0] = item(HONDAS[0], price=None, trim=None, image_urls=[], description="x")
    report = run(db, dealer.id, bad)
    assert main(["quality", "honda-town"]) == 0
    out = capsys.readouterr().out
    assert f"job {report['job_id']}" in out and "degraded" in out
    assert "price coverage 0% against a usual 100%" in out
    assert "Field coverage" in out and "Worst" in out
    assert HONDAS[0]["vin"] in out and "no_photos" in out
    first_job = report["job_id"] - 1
    assert main(["quality", "honda-town", "--job", str(first_job)]) == 0
    assert "healthy" in capsys.readouterr().out


def test_quality_of_a_dealer_whose_latest_run_has_no_report_says_so_and_names_one(
        db, capsys):
    """`quality <slug>` promises the latest finished run, but showed the newest run with a
    report: after a healthy run, a feed whose host refused the connection (failed, no
    verdict) left the earlier run's report shown as if it were the latest."""
    dealer = dealers_db.create(db, slug="honda-town", name="Honda Town",
                               website_url="https://honda.test/")
    baseline(db, dealer.id)
    healthy = db.execute("SELECT max(id) AS id FROM jobs").fetchone()["id"]
    capsys.readouterr()
    # 127.0.0.1 is allowed in tests; nothing listens on port 9: the connection is refused
    assert main(["ingest", "honda-town", "http://127.0.0.1:9/feed.csv"]) == 1
    failed = db.execute("SELECT id, state, verdict, report FROM jobs WHERE id > %s",
                        (healthy,)).fetchone()
    assert (failed["state"], failed["verdict"], failed["report"]) == ("failed", None, None)
    capsys.readouterr()
    for args, command in ((["quality", "honda-town"], "quality"),
                          (["quality", "accept", "honda-town"], "quality accept")):
        assert main(args) == 1
        out, err = capsys.readouterr()
        assert out == "", "no earlier run's report passed off as the latest"
        assert err.strip().splitlines() == [
            f"error: job {failed['id']} (feed, failed), honda-town's latest finished run, "
            f"has no quality report (see `forecourt jobs show {failed['id']}` for why; "
            f"job {healthy} is the latest with one: `forecourt {command} honda-town "
            f"--job {healthy}`)"]
    assert main(["quality", "honda-town", "--job", str(healthy)]) == 0
    assert f"job {healthy}" in capsys.readouterr().out


def test_quality_rescore_prints_a_summary(db, capsys):
    dealer = dealers_db.create(db, slug="honda-town", name="Honda Town",
                               website_url="https://honda.test/")
    run(db, dealer.id, [item(r) for r in HONDAS[:12]])
    db.execute("UPDATE vehicles SET rules_version = NULL")
    assert main(["quality", "rescore", "--dealer", "honda-town"]) == 0
    out = capsys.readouterr().out
    assert "Rescore summary" in out and "12" in out


def test_quality_rescore_stores_a_model_it_fills_from_the_vin(db, capsys):
    """The VIN stage fills a missing make or model from the decode; rescore computed flags
    with the filled model but wrote back only the flags (missing_model gone, model NULL)."""
    dealer = dealers_db.create(db, slug="honda-town", name="Honda Town",
                               website_url="https://honda.test/")
    run(db, dealer.id, [item(r, model=None) for r in HONDAS[:3]])
    db.execute("UPDATE vehicles SET model = NULL, rules_version = NULL")
    assert main(["quality", "rescore", "--dealer", "honda-town"]) == 0
    stored = {r["vin"]: r["model"] for r in db.execute("SELECT vin, model FROM vehicles")}
    assert stored == {r["vin"]: r["model"] for r in HONDAS[:3]}


def test_quality_errors_are_one_line(db, capsys):
    assert main(["quality", "no-such-dealer"]) == 1
    assert "no dealership" in capsys.readouterr().err
    dealers_db.create(db, slug="fresh", name="Fresh", website_url="https://f.test/")
    assert main(["quality", "fresh"]) == 1
    assert "no finished run" in capsys.readouterr().err


def _active(db, dealer_id: int) -> int:
    return db.execute("SELECT count(*) AS n FROM vehicles WHERE dealership_id = %s"
                      " AND status = 'active'", (dealer_id,)).fetchone()["n"]


def test_accepting_a_real_drop_makes_it_the_baseline_and_removals_resume(db, capsys):
    """A dealer really sells 20 of its 50 cars: every run is degraded (30 against a usual
    50) and removes nothing, for ever, until an operator accepts the new level."""
    dealer = dealers_db.create(db, slug="honda-town", name="Honda Town",
                               website_url="https://honda.test/")
    baseline(db, dealer.id, runs=3)
    smaller = [item(r) for r in HONDAS[:30]]
    for _ in range(2):
        stuck = run(db, dealer.id, smaller)
        assert stuck["verdict"] == "degraded" and stuck["removed"] == 0
    assert _active(db, dealer.id) == 50
    assert main(["quality", "accept", "honda-town"]) == 0
    out = capsys.readouterr().out
    assert f"job {stuck['job_id']} accepted as the new baseline" in out and "30" in out
    assert main(["quality", "honda-town"]) == 0
    assert "accepted by an operator" in capsys.readouterr().out
    after = run(db, dealer.id, smaller)
    assert after["verdict"] == "healthy" and after["state"] == "succeeded", after["reasons"]
    assert after["baseline_count"] == 30 and after["removed"] == 20
    assert _active(db, dealer.id) == 30
    # a further drop is judged against the new level, not waved through
    again = run(db, dealer.id, smaller[:10])
    assert again["verdict"] == "degraded" and again["removed"] == 0


def test_only_a_complete_unhealthy_run_can_be_accepted(db, capsys):
    dealer = dealers_db.create(db, slug="honda-town", name="Honda Town",
                               website_url="https://honda.test/")
    baseline(db, dealer.id)
    assert main(["quality", "accept", "honda-town"]) == 1
    err = capsys.readouterr().err
    assert "not a complete run the gate judged degraded or failed" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 2
    cut = run(db, dealer.id, [item(r) for r in HONDAS[:30]], complete=False)
    assert main(["quality", "accept", "honda-town", "--job", str(cut["job_id"])]) == 1
    assert "not a complete run" in capsys.readouterr().err
    assert main(["quality", "accept"]) == 1
    assert "accept needs a dealership" in capsys.readouterr().err
    drop = run(db, dealer.id, [item(r) for r in HONDAS[:30]])
    assert main(["quality", "accept", "honda-town", "--job", str(drop["job_id"])]) == 0
    capsys.readouterr()
    assert main(["quality", "accept", "honda-town", "--job", str(drop["job_id"])]) == 1
    assert "already" in capsys.readouterr().err


def test_a_run_that_stored_no_vehicle_is_never_accepted_as_the_baseline(db, capsys):
    """`quality accept` (the latest finished run by default) took an empty feed's run, "no
    vehicles found", as the new baseline: with a usual count of 0 the gate checks no count
    at all, and the next run of 5 rows was healthy and removed the other 45 cars."""
    dealer = dealers_db.create(db, slug="honda-town", name="Honda Town",
                               website_url="https://honda.test/")
    baseline(db, dealer.id)
    empty = run(db, dealer.id, [])
    assert empty["verdict"] == "failed" and "no vehicles found" in empty["reasons"]
    assert main(["quality", "accept", "honda-town"]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert f"job {empty['job_id']}" in err and "no vehicle" in err, err
    # every row rejected (a template change): as empty, for the gate's count
    unreadable = run(db, dealer.id, [item(r, vin=None, url=None) for r in HONDAS[:50]])
    assert main(["quality", "accept", "honda-town", "--job",
                 str(unreadable["job_id"])]) == 1
    assert "no vehicle" in capsys.readouterr().err
    five = run(db, dealer.id, [item(r) for r in HONDAS[:5]])
    assert five["verdict"] == "failed" and five["removed"] == 0
    assert _active(db, dealer.id) == 50


def test_a_job_of_another_dealer_names_it_and_the_command_that_shows_it(db, capsys):
    """`quality <slug> --job N` of another dealer's job said "belongs to another dealership
    (see `forecourt jobs list`)", while `rejects` names the dealer and the right command."""
    from crawler.db import jobs as jobs_db

    dealers_db.create(db, slug="mine", name="Mine", website_url="https://m.test/")
    theirs = dealers_db.create(db, slug="theirs", name="Theirs", website_url="https://t.test/")
    job, _ = jobs_db.create_or_get_active(db, theirs.id, "crawl", "operator")
    capsys.readouterr()
    assert main(["quality", "mine", "--job", str(job.id)]) == 1
    assert capsys.readouterr().err.strip() == (
        f"error: job {job.id} belongs to dealership theirs, not mine "
        f"(see `forecourt quality theirs --job {job.id}`)")
    assert main(["quality", "accept", "mine", "--job", str(job.id)]) == 1
    assert capsys.readouterr().err.strip() == (
        f"error: job {job.id} belongs to dealership theirs, not mine "
        f"(see `forecourt quality accept theirs --job {job.id}`)")
