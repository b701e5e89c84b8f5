"""`forecourt dealers remove`: offboarding a dealership takes everything only its own, in
batches a re-run finishes, touches no other dealer's data except to clear cross-dealer flags
that pointed at it, and the slug can be added again afresh."""

from __future__ import annotations

import subprocess

import pytest

from crawler import offboard
from crawler.db import dealers as dealers_db
from crawler.db import tokens as tokens_db
from quality.score import points
from tests.test_cli import FORECOURT, command_paths
from tests.test_dealers_cli import named_commands, one_error_line

DUP = "cross_dealer_duplicate"
SHARED = "1HGCM82633A004352"    # listed by acme and by other
SHARED_C = "2HGCM82633A004353"  # listed by other and by third


def remove(*args: str) -> subprocess.CompletedProcess:
    # stdin is not a terminal here, as in a script or cron job
    return subprocess.run([FORECOURT, "dealers", "remove", *args], capture_output=True,
                          text=True, timeout=120, stdin=subprocess.DEVNULL)


def vehicle(db, dealer_id: int, vin: str, status: str = "active",
            flags: tuple[str, ...] = ()) -> int:
    return db.execute(
        "INSERT INTO vehicles (dealership_id, vin, content_hash, status, quality_flags,"
        " quality_score) VALUES (%s, %s, 'h', %s, %s, %s) RETURNING id",
        (dealer_id, vin, status, list(flags), points(flags))).fetchone()["id"]


def job(db, dealer_id: int, state: str = "succeeded") -> int:
    return db.execute("INSERT INTO jobs (dealership_id, kind, trigger, state) VALUES"
                      " (%s, 'crawl', 'operator', %s) RETURNING id",
                      (dealer_id, state)).fetchone()["id"]


def stock(db, dealer_id: int, vins: list[str], job_id: int) -> None:
    for vin in vins:
        db.execute("INSERT INTO vehicle_events (dealership_id, vin, job_id, kind) VALUES"
                   " (%s, %s, %s, 'added')", (dealer_id, vin, job_id))
    db.execute("INSERT INTO rejects (job_id, dealership_id, reasons) VALUES (%s, %s, '{x}')",
               (job_id, dealer_id))
    db.execute("INSERT INTO run_seen (job_id, vin) VALUES (%s, %s)", (job_id, vins[0]))


def owned(db, dealer_id: int) -> dict[str, int]:
    """How many rows of each dealer-owned table belong to the dealer."""
    out = {}
    for table in ("vehicles", "vehicle_events", "rejects", "jobs", "feed_sources",
                  "schedule_state", "api_tokens"):
        out[table] = db.execute(f"SELECT count(*) AS n FROM {table} WHERE dealership_id = %s",
                                (dealer_id,)).fetchone()["n"]
    out["run_seen"] = db.execute(
        "SELECT count(*) AS n FROM run_seen WHERE job_id IN"
        " (SELECT id FROM jobs WHERE dealership_id = %s)", (dealer_id,)).fetchone()["n"]
    return out


@pytest.fixture
def world(db):
    """acme (to remove) with vehicles, events, rejects, jobs, seen rows, feed validators,
    schedule state and tokens; `other` shares a VIN with acme and one with `third`."""
    acme = dealers_db.create(db, slug="acme-motors", name="Acme", website_url="https://a.test/")
    other = dealers_db.create(db, slug="other-motors", name="Other",
                              website_url="https://o.test/")
    third = dealers_db.create(db, slug="third-motors", name="Third",
                              website_url="https://t.test/")
    acme_vins = [SHARED] + [f"ACME{i:013d}" for i in range(6)]
    j = job(db, acme.id)
    job(db, acme.id, "failed")
    for vin in acme_vins:
        vehicle(db, acme.id, vin, flags=(DUP,) if vin == SHARED else ())
    vehicle(db, acme.id, "ACMEREMOVED000001", status="removed")
    stock(db, acme.id, acme_vins, j)
    db.execute("INSERT INTO feed_sources (dealership_id, url) VALUES (%s, 'https://a.test/f')",
               (acme.id,))
    db.execute("INSERT INTO schedule_state (dealership_id, next_run_at) VALUES (%s, now())",
               (acme.id,))
    tokens_db.create(db, "dealer", acme.id, "acme ui")
    tokens_db.create(db, "dealer", acme.id, "acme feed")
    operator, _ = tokens_db.create(db, "operator", None, "ops")

    oj = job(db, other.id)
    shared_on_other = vehicle(db, other.id, SHARED, flags=(DUP, "no_photos"))
    c_on_other = vehicle(db, other.id, SHARED_C, flags=(DUP,))
    vehicle(db, third.id, SHARED_C, flags=(DUP,))
    stock(db, other.id, [SHARED, SHARED_C], oj)
    tokens_db.create(db, "dealer", other.id, "other ui")
    return {"acme": acme, "other": other, "third": third, "operator": operator,
            "shared_on_other": shared_on_other, "c_on_other": c_on_other}


def flags_of(db, vehicle_id: int) -> tuple[list[str], int]:
    row = db.execute("SELECT quality_flags, quality_score FROM vehicles WHERE id = %s",
                     (vehicle_id,)).fetchone()
    return sorted(row["quality_flags"]), row["quality_score"]


def test_remove_takes_everything_only_the_dealers_own_and_clears_flags_pointing_at_it(
        db, world):
    acme, other = world["acme"], world["other"]
    other_before = owned(db, other.id)
    third_before = owned(db, world["third"].id)

    result = remove("acme-motors", "--yes")
    assert result.returncode == 0, result.stderr
    assert "removed dealership acme-motors" in result.stdout
    summary = {ln.split("│")[1].strip(): ln.split("│")[2].strip()
               for ln in result.stdout.splitlines() if ln.count("│") == 3}
    assert summary["vehicles"] == "8" and summary["vehicle events"] == "7"
    assert summary["jobs"] == "2" and summary["rejects"] == "1"
    assert summary["seen rows"] == "1" and summary["api tokens"] == "2"
    assert summary["tokens revoked"] == "2" and summary["feed validators"] == "1"
    assert summary["schedule state"] == "1"
    assert summary["other dealers' flags cleared"] == "1"

    assert db.execute("SELECT 1 FROM dealerships WHERE id = %s", (acme.id,)).fetchone() is None
    assert set(owned(db, acme.id).values()) == {0}
    assert owned(db, other.id) == other_before
    assert owned(db, world["third"].id) == third_before
    assert tokens_db.get(db, world["operator"].id).revoked_at is None
    # other's copy of acme's VIN is no longer a duplicate; its own other flag stays
    assert flags_of(db, world["shared_on_other"]) == (["no_photos"], points({"no_photos"}))
    # a VIN other still shares with third keeps its flag
    assert flags_of(db, world["c_on_other"]) == ([DUP], points({DUP}))


def test_remove_shows_its_progress_batch_by_batch_then_its_summary(db, world):
    """A big dealer's removal (a million events, 5,000 rows a transaction) ran for minutes
    without a word until its summary; `offboard.remove` told of every batch, unheard."""
    result = remove("acme-motors", "--yes")
    assert result.returncode == 0, result.stderr
    progress, *rest = result.stdout.splitlines()
    assert progress.split()[:2] == ["remove", "acme-motors"], result.stdout
    assert "vehicles 8" in progress and "vehicle events 7" in progress, progress
    assert "removed dealership acme-motors" in rest[0]


def test_remove_is_refused_in_one_line_while_the_dealer_has_a_job_running(db, world):
    acme = world["acme"]
    running = job(db, acme.id, "running")
    before = owned(db, acme.id)

    line = one_error_line(remove("acme-motors", "--yes"))
    assert f"running job {running}" in line
    assert f"`forecourt jobs cancel {running}`" in line
    assert set(named_commands(line)) <= set(command_paths())
    assert owned(db, acme.id) == before
    assert not dealers_db.get(db, "acme-motors").paused
    assert all(t.revoked_at is None for t in tokens_db.list_all(db))


def test_remove_without_yes_is_refused_when_not_interactive(db, world):
    line = one_error_line(remove("acme-motors"))
    assert "--yes" in line
    assert dealers_db.get(db, "acme-motors").id == world["acme"].id
    assert owned(db, world["acme"].id)["vehicles"] == 8


def test_an_unknown_dealer_is_refused_in_one_line(db):
    assert "no dealership 'nobody'" in one_error_line(remove("nobody", "--yes"))


def test_a_removed_slug_can_be_added_again_afresh(db, world):
    assert remove("acme-motors", "--yes").returncode == 0
    again = dealers_db.create(db, slug="acme-motors", name="Acme Again",
                              website_url="https://a2.test/")
    assert again.id != world["acme"].id and not again.paused
    assert set(owned(db, again.id).values()) == {0}
    assert [d["slug"] for d in dealers_db.list_all(db)] == [
        "acme-motors", "other-motors", "third-motors"]


def test_an_interrupted_removal_is_finished_by_running_it_again(db, world):
    acme = world["acme"]
    seen = []

    def stop_after_two_vehicle_batches(what: str, n: int) -> None:
        seen.append((what, n))
        if [w for w, _ in seen].count("vehicles") == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        offboard.remove(db, acme, batch=3, on_batch=stop_after_two_vehicle_batches)
    # bounded batches, each committed: events went 3 + 3 + 1, vehicles 3 + 3 so far
    assert [n for w, n in seen if w == "vehicle events"] == [3, 3, 1]
    left = owned(db, acme.id)
    assert left["vehicles"] == 2 and left["vehicle_events"] == 0 and left["jobs"] == 2
    stopped = dealers_db.get(db, "acme-motors")
    assert stopped.paused  # no scheduled run starts on a half-removed dealer
    assert all(t.revoked_at is not None for t in tokens_db.list_all(db)
               if t.dealership_id == acme.id)

    result = remove("acme-motors", "--yes")
    assert result.returncode == 0, result.stderr
    assert db.execute("SELECT 1 FROM dealerships WHERE id = %s", (acme.id,)).fetchone() is None
    assert set(owned(db, acme.id).values()) == {0}
    assert flags_of(db, world["shared_on_other"])[0] == ["no_photos"]
    assert owned(db, world["other"].id)["vehicles"] == 2


def test_a_job_queued_while_removing_stops_the_removal_before_the_dealer_row_goes(db, world):
    acme = world["acme"]
    queued = []

    def operator_queues_a_crawl(what: str, n: int) -> None:
        if what == "jobs" and not queued:  # `forecourt crawl` still runs on a paused dealer
            queued.append(job(db, acme.id, "queued"))

    with pytest.raises(offboard.Busy, match=r"queued job \d+") as exc:
        offboard.remove(db, acme, on_batch=operator_queues_a_crawl)
    assert f"`forecourt jobs cancel {queued[0]}`" in exc.value.hint
    assert dealers_db.get(db, "acme-motors").id == acme.id
    assert owned(db, acme.id)["jobs"] == 1 and owned(db, acme.id)["vehicles"] == 0

    db.execute("UPDATE jobs SET state = 'cancelled' WHERE id = %s", (queued[0],))
    assert remove("acme-motors", "--yes").returncode == 0
    assert set(owned(db, acme.id).values()) == {0}


def remove_at_a_terminal(answer: str) -> subprocess.CompletedProcess:
    """`dealers remove acme-motors` with a terminal as stdin, answering the question."""
    import os
    import pty

    leader, follower = pty.openpty()
    try:
        os.write(leader, answer.encode() + b"\n")
        return subprocess.run([FORECOURT, "dealers", "remove", "acme-motors"],
                              capture_output=True, text=True, timeout=120, stdin=follower)
    finally:
        os.close(follower)
        os.close(leader)


def test_at_a_terminal_remove_asks_first_and_no_keeps_everything(db, world):
    kept = remove_at_a_terminal("n")
    assert kept.returncode == 1 and "nothing removed" in kept.stdout, kept.stderr
    assert "Remove dealership acme-motors" in kept.stdout
    assert owned(db, world["acme"].id)["vehicles"] == 8

    gone = remove_at_a_terminal("y")
    assert gone.returncode == 0, gone.stderr
    assert "removed dealership acme-motors" in gone.stdout
    assert set(owned(db, world["acme"].id).values()) == {0}
