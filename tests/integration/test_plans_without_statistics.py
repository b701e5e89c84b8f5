"""The statements a run repeats per batch (or once per run, per VIN it touched) keep plans that
probe an index once per element, whether or not the planner has statistics.

The CI server runs with autovacuum off, so a table nobody analyzed has none; the planner then
guesses, and had picked plans that read every active vehicle (or the whole table) once per
batch or per VIN. Each test builds the tables afresh in a schema of its own (never analyzed),
captures the statements the data-access functions run, and checks their plans, before and
after ANALYZE. Plan shapes only: nothing here measures time.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from crawler.db import connect, migrate
from crawler.db import quality as quality_db
from crawler.db import settling as settling_db
from crawler.db import vehicle_reads as reads_db
from crawler.db import vehicles as vehicles_db

pytestmark = pytest.mark.integration

BIG, SMALL = 30_000, 3_000  # vehicles of dealer 1 and of dealer 2 (every other one shared)


class Recorder:
    """Stands in for a connection: records the statements a data-access function runs and
    answers each with no rows."""

    def __init__(self) -> None:
        self.statements: list[tuple[str, Any]] = []

    def execute(self, sql: str, params: Any = None) -> Recorder:
        self.statements.append((sql, params))
        return self

    def fetchall(self) -> list:
        return []

    def fetchone(self) -> None:
        return None

    def transaction(self) -> contextlib.nullcontext:
        return contextlib.nullcontext()


def vin(dealer: int, i: int) -> str:
    return f"V{dealer}{i:015d}"


@pytest.fixture
def fresh(db) -> Iterator[Any]:
    """A connection whose search_path is a new schema holding the migrated tables, never
    analyzed, with dealer 1's BIG vehicles and dealer 2's SMALL (half of them VINs dealer 1
    lists), and job 3's 'removed' events."""
    schema = f"plans_{uuid.uuid4().hex[:10]}"
    db.execute(f"CREATE SCHEMA {schema}")
    conn = connect(options=f"-c jit=off -c search_path={schema}")
    try:
        migrate(conn)
        conn.execute("INSERT INTO dealerships (slug, name) VALUES ('one', 'One'), ('two', 'Two')")
        conn.execute("""
            INSERT INTO vehicles (dealership_id, vin, year, make, model, price, image_urls,
                                  description, source_hash, content_hash, status, last_job_id,
                                  rules_version, quality_flags)
            SELECT d, CASE WHEN d = 2 AND i %% 2 = 0 THEN 'V1' || lpad(i::text, 15, '0')
                           ELSE 'V' || d || lpad(i::text, 15, '0') END,
                   2005 + i %% 20, 'Make' || i %% 40, 'Model' || i / 40 %% 12, 5000 + i %% 30000,
                   ARRAY['https://img.example/' || d || '/' || i || '.jpg'],
                   repeat('a fine car ', 20), substr(md5(d || 's' || i), 1, 16),
                   md5(d || 'c' || i), CASE WHEN i %% 20 = 0 THEN 'removed' ELSE 'active' END,
                   d, 1, CASE WHEN d = 2 AND i %% 4 = 0 THEN '{cross_dealer_duplicate}'::text[]
                              ELSE '{}' END
              FROM generate_series(1, 2) d,
                   generate_series(1, CASE WHEN d = 1 THEN %s ELSE %s END) i""", (BIG, SMALL))
        conn.execute("""
            INSERT INTO vehicle_events (dealership_id, vin, job_id, kind, new_value)
            SELECT 1, 'V1' || lpad(i::text, 15, '0'), 1, 'added', '{}'
              FROM generate_series(1, %s) i""", (BIG,))
        conn.execute("""
            INSERT INTO vehicle_events (dealership_id, vin, job_id, kind, old_value, new_value)
            SELECT 1, 'V1' || lpad(i::text, 15, '0'), 3, 'removed', '{}', '{}'
              FROM generate_series(20, %s, 20) i""", (BIG,))
        yield conn
    finally:
        conn.close()
        db.execute(f"DROP SCHEMA {schema} CASCADE")


def plan_nodes(conn, sql: str, params: Any) -> list[dict]:
    plan = conn.execute("EXPLAIN (FORMAT JSON) " + sql, params).fetchone()["QUERY PLAN"]
    nodes, todo = [], [plan[0]["Plan"]]
    while todo:
        node = todo.pop()
        nodes.append(node)
        todo.extend(node.get("Plans", []))
    return nodes


def table_reads(nodes: list[dict]) -> set[tuple[str, str | None]]:
    """(node type, index) of every read of vehicles or vehicle_events; a bitmap heap scan
    counts as the index scans below it."""
    reads = set()
    for n in nodes:
        kind = n["Node Type"]
        if kind == "Bitmap Index Scan" and n["Index Name"].startswith("vehicle") or (
                kind.endswith("Scan") and kind != "Bitmap Heap Scan"
                and n.get("Relation Name") in ("vehicles", "vehicle_events")):
            reads.add((kind, n.get("Index Name")))
    return reads


def probes_only(nodes: list[dict], *indexes: str) -> bool:
    """Whether every read of the vehicle tables is a probe of one of these indexes (no
    sequential scan, no other index, no BitmapAnd with another)."""
    kinds = {"Index Scan", "Index Only Scan", "Bitmap Index Scan"}
    reads = table_reads(nodes)
    return bool(reads) and all(kind in kinds and index in indexes for kind, index in reads) \
        and not any(n["Node Type"] == "BitmapAnd" for n in nodes)


def captured(call) -> tuple[str, Any]:
    rec = Recorder()
    result = call(rec)
    if isinstance(result, Iterator):
        list(result)
    (statement,) = rec.statements
    return statement


def upsert_plan(conn) -> list[dict]:
    """The batched upsert's plan, for a staged batch of 2,000 of dealer 1's VINs (not run)."""
    with conn.transaction(force_rollback=True):
        conn.execute(vehicles_db._CREATE_STAGE)
        conn.execute(f"INSERT INTO stage_vehicles ({vehicles_db._COLS})"
                     f" SELECT {vehicles_db._COLS} FROM vehicles WHERE dealership_id = 1"
                     " ORDER BY vin LIMIT 2000")
        return plan_nodes(conn, vehicles_db._UPSERT, {"d": 1, "j": 9})


def test_per_batch_statements_probe_an_index_with_or_without_statistics(fresh):
    batch = [vin(1, i) for i in range(1, 5001)]
    photos = [f"https://img.example/1/{i}.jpg" for i in range(1, 5001)]
    keys = sorted({(f"make{i % 40}", f"model{i // 40 % 12}", 2005 + i % 20, "USD")
                   for i in range(1, 5001)})
    shared = [vin(1, i) for i in range(2, SMALL + 1, 2)]
    statements = {
        "vins_at_other_dealers": (
            captured(lambda c: quality_db.vins_at_other_dealers(c, 1, batch)),
            ("vehicles_vin",)),
        "hero_photo_users": (
            captured(lambda c: quality_db.hero_photo_users(c, photos)), ("vehicles_hero_photo",)),
        "price_medians_for": (
            captured(lambda c: quality_db.price_medians_for(c, keys)),
            ("vehicles_market_currency",)),
        "duplicate_candidates": (
            captured(lambda c: quality_db.duplicate_candidates(c, 1, 3, shared)),
            ("vehicles_vin", "vehicle_events_job")),
    }
    rec = Recorder()
    list(quality_db.vehicles_to_rescore(rec, 2, 2))
    (setting, _), rescore = rec.statements  # batches are read with sorts off
    fresh.execute("""
        INSERT INTO vehicle_events (dealership_id, vin, job_id, kind, new_value)
        SELECT 2, 'V2' || lpad(i::text, 15, '0'), 4, 'added', '{}'
          FROM generate_series(1, %s) i""", (SMALL,))
    history = captured(lambda c: reads_db.events_for(c, 2))
    remove = (settling_db._REMOVE.format(only="true", unseen=settling_db._UNSEEN),
              {"d": 1, "j": 3, "vins": "{}"})
    analyzed = fresh.execute("SELECT count(*) AS n FROM pg_stats WHERE schemaname ="
                             " current_schema() AND tablename = 'vehicles'").fetchone()["n"]
    assert analyzed == 0
    for state in ("never analyzed", "analyzed"):
        for name, ((sql, params), indexes) in statements.items():
            nodes = plan_nodes(fresh, sql, params)
            assert probes_only(nodes, *indexes), (state, name, table_reads(nodes))
        nodes = upsert_plan(fresh)
        assert probes_only(nodes, "vehicles_vin"), (state, "upsert", table_reads(nodes))
        # a dealer's rescore walks its range of the (dealership_id, vin) index from the last
        # batch on, never sorting what is left of the dealer for each batch, nor walking
        # the whole table's primary key
        with fresh.transaction(force_rollback=True):
            fresh.execute(setting)
            nodes = plan_nodes(fresh, *rescore)
        assert table_reads(nodes) == {("Index Scan", "vehicles_dealership_id_vin_key")}, \
            (state, table_reads(nodes))
        assert not any(n["Node Type"] == "Sort" for n in nodes), state
        # a dealer's newest events are read from its own events, never by walking every
        # dealer's through the primary key; with statistics, backwards up to the limit
        nodes = plan_nodes(fresh, *history)
        assert {i for _, i in table_reads(nodes)} == {"vehicle_events_dealer_id"}, \
            (state, table_reads(nodes))
        assert state != "analyzed" or not any(n["Node Type"] == "Sort" for n in nodes)
        # removing the unseen reads the run's seen set as an anti-join, not with a probe of
        # run_seen per active vehicle of the dealer (a subplan)
        nodes = plan_nodes(fresh, *remove)
        assert any(n.get("Join Type") == "Anti" for n in nodes), state
        assert not any(n.get("Parent Relationship") == "SubPlan" for n in nodes), state
        fresh.execute("ANALYZE vehicles, vehicle_events")


def test_cross_dealer_candidates_and_rescore_batches_are_what_they_were(fresh):
    # what the statements answer, computed here from the rows themselves
    rows = fresh.execute("SELECT id, vin, dealership_id, status, vin_placeholder,"
                         " quality_flags, rules_version FROM vehicles").fetchall()
    removed = {r["vin"] for r in fresh.execute(
        "SELECT vin FROM vehicle_events WHERE job_id = 3 AND kind = 'removed'").fetchall()}
    shared = [vin(1, i) for i in range(2, 400, 2)]
    mine = set(shared) | removed
    listing: dict[str, set[int]] = {}
    for r in rows:
        if r["vin"] in mine and r["status"] == "active" and not r["vin_placeholder"]:
            listing.setdefault(r["vin"], set()).add(r["dealership_id"])
    expected = set()
    for r in rows:
        if r["vin"] in mine:
            duplicated = (r["status"] == "active" and not r["vin_placeholder"]
                          and len(listing.get(r["vin"], ())) > 1)
            if duplicated != ("cross_dealer_duplicate" in r["quality_flags"]):
                expected.add((r["id"], r["vin"], r["dealership_id"], duplicated))
    got = quality_db.duplicate_candidates(fresh, 1, 3, shared)
    assert {(r["id"], r["vin"], r["dealership_id"], r["duplicated"]) for r in got} == expected
    assert any(d for *_, d in expected) and any(not d for *_, d in expected)

    fresh.execute("UPDATE vehicles SET rules_version = 2 WHERE id % 3 = 0")
    for dealer in (1, 2, None):
        want = sorted(r["id"] for r in fresh.execute(
            "SELECT id FROM vehicles WHERE (%s::bigint IS NULL OR dealership_id = %s)"
            " AND rules_version IS DISTINCT FROM 2", (dealer, dealer)).fetchall())
        batches = list(quality_db.vehicles_to_rescore(fresh, dealer, 2, batch_size=700))
        got = [r for b in batches for r in b]
        assert sorted(r["id"] for r in got) == want
        key = "id" if dealer is None else "vin"  # a dealer's in VIN order, all in id order
        assert [r[key] for r in got] == sorted(r[key] for r in got)
        assert all(len(b) == 700 for b in batches[:-1])


def test_removal_removes_exactly_the_active_vehicles_the_run_did_not_see(fresh):
    # run 7 of dealer 2 wrote every 5th vehicle (last_job_id), remembered every 3rd in
    # run_seen; some vehicles carry no last job at all
    fresh.execute("UPDATE vehicles SET last_job_id = CASE WHEN id % 5 = 0 THEN 7"
                  " WHEN id % 7 = 0 THEN NULL ELSE last_job_id END WHERE dealership_id = 2")
    fresh.execute("INSERT INTO run_seen (job_id, vin) SELECT 7, vin FROM vehicles"
                  " WHERE dealership_id = 2 AND id % 3 = 0")
    def active() -> set[tuple[int, str]]:
        return {(r["dealership_id"], r["vin"]) for r in fresh.execute(
            "SELECT dealership_id, vin FROM vehicles WHERE status = 'active'").fetchall()}

    rows = fresh.execute("SELECT id, vin, status, last_job_id FROM vehicles"
                         " WHERE dealership_id = 2").fetchall()
    want = {(2, r["vin"]) for r in rows if r["status"] == "active" and r["last_job_id"] != 7
            and r["id"] % 3 != 0}
    before = active()
    assert settling_db.settle_run(fresh, 2, 7, remove_unseen=True) == {"removed": len(want)}
    gone = before - active()
    events = {(r["dealership_id"], r["vin"]) for r in fresh.execute(
        "SELECT dealership_id, vin FROM vehicle_events WHERE job_id = 7 AND kind = 'removed'"
    ).fetchall()}
    assert gone == events == want and want  # none of dealer 1's, though it shares VINs
