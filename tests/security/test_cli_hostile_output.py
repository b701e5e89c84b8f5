"""Stored values come from dealer sites and feeds: the CLI prints them as text. A string
that looks like rich markup ("[/bold]", "[link=...]") is shown verbatim, never styled, never
a crash."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path

import pytest

from crawler.db import dealers as dealers_db
from crawler.db import jobs as jobs_db
from ingest.feed_job import run_job

pytestmark = pytest.mark.integration

FORECOURT = str(Path(sys.executable).parent / "forecourt")
MODEL, TRIM = "[/bold]Civic", "[link=a]b[/]"
ERROR = "[/red] page [b]gone"


def test_markup_like_values_print_verbatim_in_every_table(db, tmp_path):
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["VIN", "Year", "Make", "Model", "Trim", "SellingPrice"])
    writer.writerow(["19XFC2F7XME104512", "2021", "Honda", MODEL, TRIM, "21450"])
    feed = tmp_path / "feed.csv"
    feed.write_text(out.getvalue())
    dealer = dealers_db.create(db, slug="markup", name="Markup", feed_url=str(feed))
    job, _ = jobs_db.create_or_get_active(db, dealer.id, "feed", "operator")
    jobs_db.start(db, job.id, "test")
    assert run_job(db, job.id).state == "succeeded"
    failed, _ = jobs_db.create_or_get_active(db, dealer.id, "feed", "operator")
    jobs_db.start(db, failed.id, "test")
    jobs_db.finish(db, failed.id, "failed", counters={}, error=ERROR, error_kind="permanent")
    for args, expected in ((["vehicles", "markup"], [MODEL, TRIM]),
                           (["history", "markup"], ["added"]),
                           (["jobs", "list", "--dealer", "markup"], [ERROR]),
                           (["jobs", "show", str(failed.id)], [ERROR])):
        run = subprocess.run([FORECOURT, *args], capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, (args, run.stdout[-2000:], run.stderr[-2000:])
        for text in expected:
            assert text in run.stdout, (args, run.stdout)


def test_markup_like_names_columns_labels_and_errors_print_verbatim(db, tmp_path):
    """Names, feed columns, token labels and errors typed by people or sent by feeds: one
    '[/]' used to crash `dealers list` for every dealer."""
    name, column, label = "Bad [/] Name [bold]x[/bold]", "[/]Notes", "ci [/]"
    feed = tmp_path / "feed[red].csv"
    feed.write_text(f"VIN,Year,Make,Model,SellingPrice,{column}\n"
                    "19XFC2F7XME104512,2021,Honda,Civic,21450,hi\n")
    dealers_db.create(db, slug="named", name=name, feed_url=str(feed))
    for args, expected in ((["ingest", "named"], [column, "feed[red].csv"]),
                           (["dealers", "list"], [name]),
                           (["vehicles", "named"], [name]),
                           (["quality", "named"], [name]),
                           (["tokens", "create", "--dealer", "named", "--label", label], []),
                           (["tokens", "list"], [label]),
                           (["vin", "19XFC2F7XME104512", "--make", "[/]"], ["[/]"])):
        run = subprocess.run([FORECOURT, *args], capture_output=True, text=True, timeout=120,
                             env={**__import__("os").environ, "COLUMNS": "400"})
        assert run.returncode == 0, (args, run.stdout[-2000:], run.stderr[-2000:])
        assert "Traceback" not in run.stderr
        for text in expected:
            assert text in run.stdout, (args, run.stdout[-3000:])
