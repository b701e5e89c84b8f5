"""SQL that writes vehicles: the batched upsert and a first load's insert, with their
events, and the planner statistics those writes leave stale.

Writes go through a COPY into a temporary staging table and one statement that inserts new
vehicles, updates only those whose content hash changed (or that come back after removal),
and records the events, all in one snapshot so old values are read before they are
overwritten. Unchanged vehicles cost no write.

A vehicle goes to COPY as a line of COPY's text format (crawler/db/copy_text.py). What a run
saw and settling it (removals) are in crawler/db/settling.py, the feed's read of stored
source-row hashes in crawler/db/source_hashes.py, other reads in crawler/db/vehicle_reads.py.
"""

from __future__ import annotations

from collections.abc import Sequence

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
