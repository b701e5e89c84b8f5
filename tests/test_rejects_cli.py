"""`forecourt rejects`: what a dealer's runs could not store, newest job first, with the
source, every reason and the start of the raw row; read through an index that needs no
sort (migration 0008)."""

from __future__ import annotations

import json

import pytest

from crawler.db import jobs as jobs_db
from crawler.db import rejects as rejects_db
from crawler.models import Reject
from tests.integration.test_ingest_feeds import FEEDS, dealer, forecourt, ingest

pytestmark = pytest.mark.integration


def table_rows(out: str) -> list[list[str]]:
    """The cells of a rich table's rows (a cell folded over lines is joined)."""
    rows: list[list[str]] = []
    for line in out.splitlines():
        if not line.startswith("│"):
            continue
        cells = [c.strip() for c in line.strip("│").split("│")]
        if cells[0] and cells[0] != "job":
            rows.append(cells)
        elif rows and cells[0] == "":
            rows[-1] = [f"{a} {b}".strip() for a, b in zip(rows[-1], cells, strict=True)]
    return rows


def test_rejects_lists_sources_reasons_and_raw_rows_newest_job_first(db, capsys):
    d = dealer(db, "aggregated")
    first, second = (ingest(db, d, FEEDS / "aggregator.jsonl") for _ in range(2))
    other = dealer(db, "other")
    ingest(db, other, FEEDS / "aggregator.jsonl")

    code, out, err = forecourt(capsys, "rejects", "aggregated")
    assert code == 0, err
    assert "AGGREGATED: 4 reject(s)" in out
    rows = table_rows(out)
    assert [r[0] for r in rows] == [str(second.id)] * 2 + [str(first.id)] * 2
    by_source = {r[1]: r for r in rows[:2]}
    assert set(by_source) == {"row 3", "row 4"}
    assert "not JSON" in by_source["row 3"][2]
    assert by_source["row 3"][3].startswith('{"vin": "JN8BT3BB7NW300112"')  # the raw line
    assert "17 letters" in by_source["row 4"][2]
    assert '"vin": "NOTAVIN"' in by_source["row 4"][3]  # the raw record, as JSON

    code, out, err = forecourt(capsys, "rejects", "aggregated", "--job", str(first.id))
    assert code == 0, err
    assert f"AGGREGATED: 2 reject(s) of job {first.id}" in out
    assert {r[0] for r in table_rows(out)} == {str(first.id)}

    code, out, err = forecourt(capsys, "rejects", "aggregated", "--limit", "1")
    assert code == 0, err
    assert [r[0] for r in table_rows(out)] == [str(second.id)]


def test_a_limited_listing_says_how_many_there_are_or_that_there_are_more(db, capsys):
    """`rejects --limit 3` titled its table "3 reject(s), the newest 3", as if there were
    only 3. It says of how many, counted up to rejects.COUNT_UPTO (a bounded index-only
    read), and past that only that there are more."""
    d = dealer(db, "aggregated")
    first, _ = (ingest(db, d, FEEDS / "aggregator.jsonl") for _ in range(2))
    code, out, err = forecourt(capsys, "rejects", "aggregated", "--limit", "3")
    assert code == 0, err
    assert "AGGREGATED: the newest 3 of 4 rejects" in out and "reject(s)" not in out, out
    code, out, err = forecourt(capsys, "rejects", "aggregated", "--limit", "2", "--job",
                               str(first.id))
    assert "AGGREGATED: 2 reject(s) of job" in out, out  # all of them: nothing more to say
    code, out, err = forecourt(capsys, "rejects", "aggregated", "--limit", "1", "--job",
                               str(first.id))
    assert f"AGGREGATED: the newest 1 of 2 rejects of job {first.id}" in out, out
    db.execute("INSERT INTO rejects (dealership_id, job_id, source, reasons, payload) "
               "SELECT %s, %s, 'row ' || n, ARRAY['missing VIN'], '{}' "
               "FROM generate_series(1, %s) n", (d.id, first.id, rejects_db.COUNT_UPTO))
    code, out, err = forecourt(capsys, "rejects", "aggregated", "--limit", "3")
    assert "AGGREGATED: the newest 3 (more: --limit)" in out and " of " not in out, out


@pytest.mark.parametrize("job", [False, True], ids=["dealer", "job"])
def test_the_count_reads_at_most_count_upto_index_entries(db, job):
    d = dealer(db, "many")
    j, _ = jobs_db.create_or_get_active(db, d.id, "feed", "operator")
    rejects_db.add(db, d.id, j.id, [Reject(source=f"row {n}", reasons=["missing VIN"],
                                           payload={}) for n in range(5)])
    db.execute("ANALYZE rejects")
    with db.transaction():
        db.execute("SET LOCAL enable_seqscan = off")  # a small table: show the indexed plan
        plan = json.dumps(db.execute(
            "EXPLAIN (FORMAT JSON) " + rejects_db.COUNT.format(
                job="AND job_id = %(j)s" if job else ""),
            {"d": d.id, "j": j.id, "upto": rejects_db.COUNT_UPTO}).fetchone())
    assert '"Node Type": "Limit"' in plan and "rejects_dealer_job_id" in plan, plan
    assert rejects_db.count_upto(db, d.id, j.id if job else None) == 5
    assert rejects_db.count_upto(db, d.id, None, upto=4) is None


def test_a_long_raw_row_is_cut_to_one_line(db, capsys):
    d = dealer(db, "long-rows")
    job, _ = jobs_db.create_or_get_active(db, d.id, "feed", "operator")
    raw = "VIN;" + ";".join(f"field {n}\nwith a line break" for n in range(2000))
    rejects_db.add(db, d.id, job.id, [Reject(source="row 2", reasons=["wrong field count"],
                                             payload={"raw": raw})])
    code, out, err = forecourt(capsys, "rejects", "long-rows")
    assert code == 0, err
    [row] = table_rows(out)
    assert row[1:] == ["row 2", "wrong field count",
                       "VIN;field 0 with a line break;field 1 with a line break;fie…"]


def test_a_job_of_another_dealer_or_none_is_a_one_line_error(db, capsys):
    mine, theirs = dealer(db, "mine"), dealer(db, "theirs")
    job, _ = jobs_db.create_or_get_active(db, theirs.id, "feed", "operator")
    code, _, err = forecourt(capsys, "rejects", "mine", "--job", str(job.id))
    assert code == 1
    assert err.strip() == (f"error: job {job.id} belongs to dealership theirs, not mine "
                           f"(see `forecourt rejects theirs --job {job.id}`)")
    code, _, err = forecourt(capsys, "rejects", "mine", "--job", str(job.id + 1000))
    assert code == 1 and err.startswith(f"error: no job {job.id + 1000} (")
    code, _, err = forecourt(capsys, "rejects", "nobody")
    assert code == 1 and err.startswith("error: no dealership 'nobody' (")
    assert mine.id != theirs.id


@pytest.mark.parametrize("job", [False, True], ids=["dealer", "job"])
def test_the_listing_reads_the_index_backward_without_a_sort(db, job):
    d = dealer(db, "many")
    jobs = []
    for _ in range(3):
        j, _ = jobs_db.create_or_get_active(db, d.id, "feed", "operator")
        rejects_db.add(db, d.id, j.id, [Reject(source=f"row {n}", reasons=["missing VIN"],
                                               payload={"raw": {"n": n}}) for n in range(50)])
        db.execute("UPDATE jobs SET state = 'failed' WHERE id = %s", (j.id,))
        jobs.append(j.id)
    db.execute("ANALYZE rejects")
    params = {"d": d.id, "j": jobs[1] if job else None, "n": 10, "chars": 200}
    sql = rejects_db.NEWEST.format(job="AND job_id = %(j)s" if job else "")
    with db.transaction():
        db.execute("SET LOCAL enable_seqscan = off")  # a small table: show the indexed plan
        plan = json.dumps(db.execute("EXPLAIN (FORMAT JSON) " + sql, params).fetchone())
        rows = db.execute(sql, params).fetchall()
    assert "Sort" not in plan, plan
    assert '"Scan Direction": "Backward"' in plan and "rejects_dealer_job_id" in plan, plan
    assert len(rows) == 10
    assert [r["job_id"] for r in rows] == [jobs[1] if job else jobs[2]] * 10
    assert [r["id"] for r in rows] == sorted((r["id"] for r in rows), reverse=True)
