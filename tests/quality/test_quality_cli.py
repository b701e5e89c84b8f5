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


def test_quality_rescore_prints_a_summary(db, capsys):
    dealer = dealers_db.create(db, slug="honda-town", name="Honda Town",
                               website_url="https://honda.test/")
    run(db, dealer.id, [item(r) for r in HONDAS[:12]])
    db.execute("UPDATE vehicles SET rules_version = NULL")
    assert main(["quality", "rescore", "--dealer", "honda-town"]) == 0
    out = capsys.readouterr().out
    assert "Rescore summary" in out and "12" in out


def test_quality_errors_are_one_line(db, capsys):
    assert main(["quality", "no-such-dealer"]) == 1
    assert "no dealership" in capsys.readouterr().err
    dealers_db.create(db, slug="fresh", name="Fresh", website_url="https://f.test/")
    assert main(["quality", "fresh"]) == 1
    assert "no finished run" in capsys.readouterr().err
