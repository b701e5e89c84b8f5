"""SQL for vehicles and their events: the batched upsert, removals, and reads.

Writes go through a COPY into a temporary staging table and one statement that inserts new
vehicles, updates only those whose content hash changed (or that come back after removal),
and records the events, all in one snapshot so old values are read before they are
overwritten. Unchanged vehicles cost no write.

A vehicle goes to COPY as a line of COPY's text format (crawler/db/copy_text.py).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from itertools import repeat
from typing import Any

import psycopg

from crawler.db.copy_text import STAGE_COLUMNS, array_literal
from crawler.models import Vehicle

_NAMES = [c for c, _ in STAGE_COLUMNS]
_COLS = ", ".join(_NAMES)

_CREATE_STAGE = (
    "CREATE TEMP TABLE IF NOT EXISTS stage_vehicles ("
    + ", ".join(f"{c} {t}" for c, t in STAGE_COLUMNS)
    + ") ON COMMIT DELETE ROWS"
)

_UPDATE_SET = ", ".join(f"{c} = EXCLUDED.{c}" for c in _NAMES if c != "vin")

_UPSERT = f"""
WITH stage AS (
    SELECT DISTINCT ON (vin) * FROM stage_vehicles ORDER BY vin
), old AS (
    -- one probe of the VIN index per staged row, whatever the planner believes of the
    -- dealer's size: statistics lag behind a bulk load, and it then hash-joined all the
    -- dealer's vehicles, or walked them through a dealership_id index filtering on vin.
    -- LIMIT keeps the subquery a per-row probe; "+ 0" keeps dealership_id indexes out.
    SELECT o.* FROM stage s CROSS JOIN LATERAL (
        SELECT v.vin, v.price, v.status, v.availability, v.content_hash FROM vehicles v
         WHERE v.vin = s.vin AND v.dealership_id + 0 = %(d)s LIMIT 1) o
), up AS (
    INSERT INTO vehicles (dealership_id, last_job_id, {_COLS})
    SELECT %(d)s, %(j)s, {_COLS} FROM stage
    ON CONFLICT (dealership_id, vin) DO UPDATE
       SET {_UPDATE_SET}, status = 'active', removed_at = NULL, last_seen = now(),
           updated_at = CASE WHEN vehicles.content_hash IS DISTINCT FROM EXCLUDED.content_hash
                               OR vehicles.status <> 'active' THEN now()
                             ELSE vehicles.updated_at END,
           last_job_id = EXCLUDED.last_job_id
     WHERE vehicles.content_hash IS DISTINCT FROM EXCLUDED.content_hash
        OR vehicles.status <> 'active'
        -- same content from a different source row: only the source hash is refreshed
        OR (EXCLUDED.source_hash IS NOT NULL
            AND vehicles.source_hash IS DISTINCT FROM EXCLUDED.source_hash)
    RETURNING vin, price, availability, content_hash, (xmax = 0) AS inserted
), ev AS (
    -- the kinds first, the JSON only for the events that exist (not for all four a row)
    INSERT INTO vehicle_events (dealership_id, vin, job_id, kind, old_value, new_value)
    SELECT %(d)s, up.vin, %(j)s, e.kind,
           CASE e.kind WHEN 'relisted' THEN jsonb_build_object('status', 'removed')
                       WHEN 'price_changed' THEN jsonb_build_object('price', old.price)
                       WHEN 'status_changed'
                            THEN jsonb_build_object('availability', old.availability) END,
           CASE e.kind WHEN 'added' THEN jsonb_build_object('price', up.price,
                                                            'availability', up.availability)
                       WHEN 'relisted' THEN jsonb_build_object('status', 'active',
                                                               'price', up.price)
                       WHEN 'price_changed' THEN jsonb_build_object('price', up.price)
                       ELSE jsonb_build_object('availability', up.availability) END
      FROM up LEFT JOIN old USING (vin)
     CROSS JOIN LATERAL (VALUES
        (CASE WHEN up.inserted THEN 'added' END),
        (CASE WHEN NOT up.inserted AND old.status = 'removed' THEN 'relisted' END),
        (CASE WHEN NOT up.inserted AND old.price IS DISTINCT FROM up.price
              THEN 'price_changed' END),
        (CASE WHEN NOT up.inserted AND old.availability IS DISTINCT FROM up.availability
              THEN 'status_changed' END)
     ) AS e(kind)
     WHERE e.kind IS NOT NULL
    RETURNING kind
), seen AS (
    -- what was written carries last_job_id = j; only what was not is remembered here
    INSERT INTO run_seen (job_id, vin)
    SELECT %(j)s, vin FROM stage WHERE NOT EXISTS (SELECT 1 FROM up WHERE up.vin = stage.vin)
    ON CONFLICT DO NOTHING
)
SELECT (SELECT count(*) FROM stage) AS total,
       (SELECT count(*) FROM up WHERE inserted) AS added,
       (SELECT count(*) FROM up LEFT JOIN old USING (vin)
         WHERE NOT inserted AND (old.content_hash IS DISTINCT FROM up.content_hash
                                 OR old.status <> 'active')) AS changed,
       (SELECT count(*) FROM ev WHERE kind = 'relisted') AS relisted,
       (SELECT count(*) FROM ev WHERE kind = 'price_changed') AS price_changed
"""


def _copy_text(lines: Sequence[str], suffix: str = "\n") -> str:
    """COPY text of whole lines, each ended by `suffix` (its last values and the newline)."""
    return suffix.join(lines) + suffix


def upsert(conn: psycopg.Connection, dealership_id: int, job_id: int,
           lines: Sequence[str]) -> dict[str, int]:
    """Write a batch of vehicles (COPY lines from copy_line); returns counts of
    total/added/changed/... Atomic: the whole batch commits, or none of it does."""
    if not lines:
        return _added(0)
    with conn.transaction():
        conn.execute(_CREATE_STAGE)
        with conn.cursor().copy(f"COPY stage_vehicles ({_COLS}) FROM STDIN") as cp:
            cp.write(_copy_text(lines))
        counts = conn.execute(_UPSERT, {"d": dealership_id, "j": job_id}).fetchone()
    return {k: int(v) for k, v in counts.items()}


def _added(n: int) -> dict[str, int]:
    """The counts of a batch of n vehicles that were all new."""
    return {"total": n, "added": n, "changed": 0, "relisted": 0, "price_changed": 0}


_ADDED_EVENTS = """
INSERT INTO vehicle_events (dealership_id, vin, job_id, kind, new_value)
SELECT %(d)s, vin, %(j)s, 'added',
       jsonb_build_object('price', price, 'availability', availability)
  FROM unnest(%(vins)s::text[], %(prices)s::numeric[], %(avail)s::text[])
       AS t(vin, price, availability)
"""


def insert_new(conn: psycopg.Connection, dealership_id: int, job_id: int,
               lines: Sequence[str], vehicles: Sequence[Vehicle]) -> dict[str, int] | None:
    """Write a batch of vehicles (COPY lines from copy_line, of `vehicles`) the dealership
    has never listed: one COPY straight into vehicles and their 'added' events, no staging
    and no conflict handling (a first load costs about what a bare COPY does). Atomic.
    Returns the counts, or None, with nothing written, when some VIN is there already (the
    caller upserts instead)."""
    if not lines:
        return _added(0)
    try:
        with conn.transaction():
            with conn.cursor().copy(
                    f"COPY vehicles ({_COLS}, dealership_id, last_job_id) FROM STDIN") as cp:
                cp.write(_copy_text(lines, f"\t{int(dealership_id)}\t{int(job_id)}\n"))
            conn.execute(_ADDED_EVENTS, {
                "d": dealership_id, "j": job_id,
                "vins": array_literal([v.vin for v in vehicles]),
                "prices": array_literal([None if v.price is None else str(v.price)
                                         for v in vehicles]),
                "avail": array_literal([v.availability for v in vehicles])})
    except psycopg.errors.UniqueViolation:
        return None
    return _added(len(lines))


def has_vehicles(conn: psycopg.Connection, dealership_id: int) -> bool:
    """Whether the dealership has any vehicle row, active or removed."""
    return conn.execute("SELECT EXISTS (SELECT 1 FROM vehicles WHERE dealership_id = %s) AS x",
                        (dealership_id,)).fetchone()["x"]


_KNOWN_TEXT = ("string_agg(CASE WHEN length(source_hash) = 16 THEN source_hash"
               " ELSE '----------------' END || vin, E'\\n')")
# One row per 65,536 ids of the dealer's active vehicles.
_KNOWN_BY_IDS = (f"SELECT {_KNOWN_TEXT} AS h FROM vehicles"
                 " WHERE dealership_id = %(d)s AND status = 'active' GROUP BY id >> 16")
# One row per sixteenth of the table's blocks, each read by its own TID range scan as the
# row is made: rows reach the caller one by one, all from one snapshot (one statement).
KNOWN_PARTS = 16
_KNOWN_BY_BLOCKS = f"""
WITH b AS (SELECT (pg_relation_size('vehicles') / current_setting('block_size')::int
                   + {KNOWN_PARTS}) / {KNOWN_PARTS} AS step)
SELECT (SELECT {_KNOWN_TEXT} FROM vehicles v
         WHERE v.ctid >= format('(%%s,0)', g * b.step)::tid
           AND v.ctid < format('(%%s,0)', CASE WHEN g = {KNOWN_PARTS - 1} THEN 4294967295
                                             ELSE (g + 1) * b.step END)::tid
           AND v.dealership_id = %(d)s AND v.status = 'active') AS h
  FROM b, generate_series(0, {KNOWN_PARTS - 1}) g
"""


def _reads_every_row(plan: Any) -> bool:
    """Whether an EXPLAIN (FORMAT JSON) plan reads vehicles with a sequential scan."""
    if isinstance(plan, dict):
        if plan.get("Node Type") == "Seq Scan" and plan.get("Relation Name") == "vehicles":
            return True
        return any(_reads_every_row(v) for v in plan.values() if isinstance(v, (dict, list)))
    return isinstance(plan, list) and any(_reads_every_row(v) for v in plan)


def source_hashes(conn: psycopg.Connection, dealership_id: int, by_blocks: bool | None = None
                  ) -> Iterator[tuple[list[int | None], list[str]]]:
    """The source-row hashes and VINs of a dealer's active vehicles, a group at a time as
    two lists (hashes[i] is the hash of vins[i]); a hash (16 hex characters stored) as an
    int, None for a vehicle without one (crawled, say). Each group is one row holding
    ~65,000 vehicles' worth end to end (3.4 MB), streamed one at a time: a row per vehicle
    costs far more (COPY TO sends one message a row), and one row for all of them (34 MB for
    a million, held twice while it is decoded) would raise the run's peak memory by 70 MB.
    A group is split in bulk, not walked a vehicle at a time (0.8 -> 0.3 s a million).

    Where the planner would read the whole table for them anyway (the dealer holds much of
    it), the groups are sixteenths of its blocks, each sent as soon as it is read, so the
    caller splits one while the next is read (1.0 -> 0.6 s a million). Elsewhere (a small
    dealer among many) they are read through the dealer's index, grouped by id in a hash
    table by one process: the planner cannot know the groups are few, and for a million
    vehicles it sorted them all, spilling to disk, in three parallel processes.
    `by_blocks` forces either way (tests)."""
    params = {"d": dealership_id}
    with conn.transaction():
        conn.execute("SET LOCAL max_parallel_workers_per_gather = 0")
        conn.execute("SET LOCAL enable_sort = off")
        if by_blocks is None:  # TID range scans came with PostgreSQL 14
            plan = conn.execute(f"EXPLAIN (FORMAT JSON) {_KNOWN_BY_IDS}", params).fetchone()
            by_blocks = (conn.info.server_version >= 140000
                         and _reads_every_row(list(plan.values())))
        rows = conn.cursor().stream(_KNOWN_BY_BLOCKS if by_blocks else _KNOWN_BY_IDS, params)
        for row in rows:
            if row["h"] is None:  # a sixteenth of the table without this dealer's vehicles
                continue
            lines = row["h"].split("\n")
            hexes = [line[:16] for line in lines]
            vins = [line[16:] for line in lines]
            del lines
            if "----------------" in hexes:  # some vehicles have no source-row hash
                yield [None if h[0] == "-" else int(h, 16) for h in hexes], vins
            else:
                yield list(map(int, hexes, repeat(16))), vins


# A vehicle the run did not see: neither written by it (last_job_id) nor remembered in
# run_seen. Written as AND NOT EXISTS, which the planner makes an anti-join (hashed in
# batches at any size), not as NOT (written OR EXISTS ...), which can only be a subplan:
# hashed while the run's seen set fits in hash_mem (~200k VINs at the default work_mem),
# past that one probe of run_seen per active vehicle of the dealer (a 200k-vehicle crawl's
# removal so: 1.15M pages read and 2.2 s; as an anti-join 0.46M and 1.8 s).
_UNSEEN = """v.last_job_id IS DISTINCT FROM %(j)s
    AND NOT EXISTS (SELECT 1 FROM run_seen s WHERE s.job_id = %(j)s AND s.vin = v.vin)"""

_REMOVE = """
WITH gone AS (
    UPDATE vehicles v
       SET status = 'removed', removed_at = now(), updated_at = now(), last_job_id = %(j)s
     WHERE v.dealership_id = %(d)s AND v.status = 'active' AND {only} AND {unseen}
    RETURNING v.vin, v.price
), ev AS (
    INSERT INTO vehicle_events (dealership_id, vin, job_id, kind, old_value, new_value)
    SELECT %(d)s, vin, %(j)s, 'removed', jsonb_build_object('status', 'active', 'price', price),
           jsonb_build_object('status', 'removed')
      FROM gone
    RETURNING 1
)
SELECT count(*) AS n FROM ev
"""


_ESTABLISHED = """
SELECT count(*) AS n FROM vehicles v
 WHERE v.dealership_id = %(d)s AND v.status = 'active'
   AND v.first_seen <= coalesce(%(before)s::timestamptz, 'infinity')
"""


def unseen_established(conn: psycopg.Connection, dealership_id: int, job_id: int,
                       candidates: Collection[str] | None, before: Any | None) -> int:
    """Established active vehicles (listed by `before`; None: all of them) the running job
    has not seen: what settling it with removal would take off the market of the inventory
    `before` listed. `candidates` as for settle_run: a feed run's few candidates cost an
    index probe each, not a count of the dealer's vehicles. Call before settle_run, which
    forgets the seen set."""
    if candidates is not None and not candidates:
        return 0
    only = "true" if candidates is None else "v.vin = ANY(%(vins)s::text[])"
    return int(conn.execute(f"{_ESTABLISHED} AND {only} AND {_UNSEEN}",  # noqa: S608
                            {"d": dealership_id, "j": job_id, "before": before,
                             "vins": array_literal(candidates or ())}).fetchone()["n"])


def established(conn: psycopg.Connection, dealership_id: int, before: Any | None) -> int:
    """Active vehicles of the dealership listed by `before` (None: all of them)."""
    return int(conn.execute(_ESTABLISHED, {"d": dealership_id, "before": before}
                            ).fetchone()["n"])


def settle_run(conn: psycopg.Connection, dealership_id: int, job_id: int,
               remove_unseen: bool, candidates: Collection[str] | None = None,
               attempt: tuple[int, str] | None = None) -> dict[str, int]:
    """End a run: optionally mark the unseen removed, and forget the run's seen set.

    Nothing is written for what the run saw unchanged: `last_seen` is when a run last wrote
    the vehicle (added, changed, relisted). That an active vehicle is still listed is what
    its dealership's latest complete run says; refreshing a column on every unchanged row
    would make a daily re-ingest of a million-row feed rewrite a million rows.

    `candidates` is for a feed run that skipped unchanged rows without recording them: the
    VINs of the active vehicles it may not have seen (what its fast path knows it did not
    meet). Only they can be removed, found through the VIN index; without it every active
    vehicle of the dealer is checked (a million-vehicle dealer's whole table: ~2.7 s).
    Either way a vehicle the run wrote or recorded is seen. Returns {"removed": n}.

    `attempt`: the job's (attempts, state) when the run opened. If another attempt has
    claimed the job since (a live run taken for abandoned and retried), or it is no longer
    running, this run is superseded: it removes nothing and leaves the seen set, which the
    job's current attempt shares, alone; the result then has "superseded": 1."""
    removed = 0
    params: dict[str, Any] = {"d": dealership_id, "j": job_id,
                              "vins": array_literal(candidates or ())}
    only = "true" if candidates is None else "v.vin = ANY(%(vins)s::text[])"
    with conn.transaction():
        if attempt is not None:
            now = conn.execute("SELECT attempts, state FROM jobs WHERE id = %s FOR UPDATE",
                               (job_id,)).fetchone()
            if now is None or now["attempts"] != attempt[0] or (
                    attempt[1] == "running" and now["state"] != "running"):
                return {"removed": 0, "superseded": 1}
        if remove_unseen and (candidates is None or candidates):
            removed = conn.execute(_REMOVE.format(only=only, unseen=_UNSEEN),  # noqa: S608
                                   params).fetchone()["n"]
        conn.execute("DELETE FROM run_seen WHERE job_id = %s", (job_id,))
    return {"removed": int(removed)}


def event_counts(conn: psycopg.Connection, job_id: int) -> dict[str, int]:
    """How many events of each kind (added, price_changed, relisted, removed, ...) the job
    has recorded, over all its attempts (along the job_id index)."""
    rows = conn.execute("SELECT kind, count(*) AS n FROM vehicle_events WHERE job_id = %s"
                        " GROUP BY kind", (job_id,)).fetchall()
    return {r["kind"]: int(r["n"]) for r in rows}


# The one active vehicle of the dealer at each URL (a URL several share names none of them).
_SEEN_BY_URL = """
INSERT INTO run_seen (job_id, vin)
SELECT %(j)s, min(v.vin) FROM vehicles v
 WHERE v.dealership_id = %(d)s AND v.status = 'active' AND v.url = ANY(%(urls)s::text[])
 GROUP BY v.url HAVING count(*) = 1
    ON CONFLICT DO NOTHING
"""


def mark_seen_by_url(conn: psycopg.Connection, dealership_id: int, job_id: int,
                     urls: Collection[str]) -> None:
    """Record as seen by the run each active vehicle of the dealer that is alone at one of
    `urls` (pages of rows rejected for want of a readable VIN: the car is still listed).
    One scan of the dealer's active vehicles; call before settle_run."""
    if urls:
        conn.execute(_SEEN_BY_URL, {"j": job_id, "d": dealership_id, "urls": list(urls)})


_STORED_COVERAGE = """
SELECT count(*) AS base, count(price) AS price, count(mileage) AS mileage,
       count(*) FILTER (WHERE NOT 'no_photos' = ANY(quality_flags)) AS images,
       count(*) FILTER (WHERE trim <> '') AS trim, count(*) FILTER (WHERE model <> '') AS model,
       count(year) AS year, count(*) FILTER (WHERE make <> '') AS make,
       count(*) FILTER (WHERE exterior_color <> '') AS exterior_color,
       count(*) FILTER (WHERE description <> '') AS description,
       count(condition) AS condition, count(*) FILTER (WHERE NOT vin_placeholder) AS real_vin
  FROM vehicles v
 WHERE v.dealership_id = %(d)s AND v.status = 'active'
   AND v.last_job_id IS DISTINCT FROM %(j)s
   AND NOT (v.vin = ANY(%(vins)s::text[]))
   AND NOT EXISTS (SELECT 1 FROM run_seen s WHERE s.job_id = %(j)s AND s.vin = v.vin)
"""


def stored_coverage(conn: psycopg.Connection, dealership_id: int, job_id: int,
                    not_met: Collection[str]) -> dict[str, int]:
    """Coverage counters (as pipelines.quality.coverage_counts gives them) of the dealer's
    active vehicles that a running feed job passed over unchanged: neither written nor
    recorded as seen by it, nor among `not_met` (those it did not meet at all). Call
    before settle_run, which forgets the seen set."""
    row = conn.execute(_STORED_COVERAGE, {"d": dealership_id, "j": job_id,
                                          "vins": array_literal(not_met)}).fetchone()
    base = row.pop("base")
    return {"coverage_base": int(base), **{f"coverage_{k}": int(n) for k, n in row.items()}}


def forget_seen_of_ended(conn: psycopg.Connection, ended_before_s: float,
                         limit: int = 50) -> list[int]:
    """Drop the seen sets (run_seen) that no run will settle: those of jobs that ended
    `ended_before_s` ago or more without settling a run (killed past the reaper, buried),
    and of jobs no longer on record. Returns their job ids, at most `limit` jobs a call."""
    rows = conn.execute(
        """
        WITH RECURSIVE ids AS (  -- the distinct job ids, one index probe each: a
            -- re-ingest's seen set holds a row per unchanged vehicle, millions at scale
            (SELECT job_id FROM run_seen ORDER BY job_id LIMIT 1)
            UNION ALL
            SELECT (SELECT s.job_id FROM run_seen s WHERE s.job_id > ids.job_id
                     ORDER BY s.job_id LIMIT 1)
              FROM ids WHERE ids.job_id IS NOT NULL
        ), ended AS (
            SELECT ids.job_id FROM ids
              LEFT JOIN jobs j ON j.id = ids.job_id
             WHERE ids.job_id IS NOT NULL AND (j.id IS NULL
                OR (j.state NOT IN ('queued', 'running')
                    AND j.updated_at < now() - make_interval(secs => %(s)s)))
             LIMIT %(n)s
        ), gone AS (
            DELETE FROM run_seen s USING ended e WHERE s.job_id = e.job_id
            RETURNING s.job_id
        )
        SELECT DISTINCT job_id FROM gone ORDER BY job_id
        """, {"s": ended_before_s, "n": limit}).fetchall()
    return [r["job_id"] for r in rows]


# ANALYZE a table once the rows changed since its last ANALYZE reach this many, and at least
# half the rows it had then: a bulk load's tables double several times, a daily run's don't.
STATS_MIN_CHANGES = 5_000


def refresh_statistics(conn: psycopg.Connection, written: int = 0,
                       tables: Sequence[str] = ("vehicles", "vehicle_events")) -> list[str]:
    """ANALYZE these tables (of vehicles and vehicle_events) if they changed a lot since
    their last ANALYZE; returns the tables analyzed. `written`: rows the caller wrote since
    it last asked (PostgreSQL's own count, n_mod_since_analyze, reaches the statistics
    views only when the writing backend flushes them, up to a second or more later).

    Autovacuum may be off (it is on some managed and CI servers) and, when on, lags a bulk
    load by a minute or more. Without statistics the planner treats a million-row vehicles
    table as unknown and has picked plans that scan every active vehicle once per VIN of a
    batch. About 0.3 s per table: ANALYZE reads a fixed-size sample, whatever the table's
    size."""
    rows = conn.execute(
        """
        SELECT s.relname, s.n_mod_since_analyze AS changed,
               greatest(c.reltuples, 0)::bigint AS rows_then
          FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
         WHERE s.relname = ANY(%s) AND s.schemaname = current_schema()
        """, ([t for t in tables if t in ("vehicles", "vehicle_events")],)).fetchall()
    stale = sorted(r["relname"] for r in rows
                   if max(r["changed"], written) >= max(STATS_MIN_CHANGES, r["rows_then"] // 2))
    if stale:
        conn.execute(f"ANALYZE {', '.join(stale)}")
    return stale


def active_count(conn: psycopg.Connection, dealership_id: int) -> int:
    return conn.execute(
        "SELECT count(*) AS n FROM vehicles WHERE dealership_id = %s AND status = 'active'",
        (dealership_id,),
    ).fetchone()["n"]


def list_for(conn: psycopg.Connection, dealership_id: int, status: str | None = "active",
             limit: int = 100) -> list[dict[str, Any]]:
    return conn.execute(
        """
        SELECT *, floor(extract(epoch FROM coalesce(removed_at, now()) - first_seen)
                        / 86400)::int AS days_on_lot
          FROM vehicles
         WHERE dealership_id = %(d)s AND (%(s)s::text IS NULL OR status = %(s)s)
         ORDER BY make, model, year, vin LIMIT %(n)s
        """,
        {"d": dealership_id, "s": status, "n": limit},
    ).fetchall()


def events_for(conn: psycopg.Connection, dealership_id: int, vin: str | None = None,
               limit: int = 200) -> list[dict[str, Any]]:
    return conn.execute(
        """
        SELECT * FROM vehicle_events
         WHERE dealership_id = %(d)s AND (%(v)s::text IS NULL OR vin = %(v)s)
         ORDER BY id DESC LIMIT %(n)s
        """,
        {"d": dealership_id, "v": vin, "n": limit},
    ).fetchall()


def vin_status(conn: psycopg.Connection, dealership_id: int, vin: str) -> str | None:
    """The dealership's vehicle with this VIN: its status (active, removed), or None."""
    row = conn.execute("SELECT status FROM vehicles WHERE dealership_id = %s AND vin = %s",
                       (dealership_id, vin)).fetchone()
    return row["status"] if row else None


def dealers_with_vin(conn: psycopg.Connection, vin: str, limit: int = 3) -> list[str]:
    """Slugs of (up to `limit`) dealerships that have a vehicle with this VIN, by slug."""
    rows = conn.execute(
        """
        SELECT d.slug FROM vehicles v JOIN dealerships d ON d.id = v.dealership_id
         WHERE v.vin = %s ORDER BY d.slug LIMIT %s
        """, (vin, limit)).fetchall()
    return [r["slug"] for r in rows]
