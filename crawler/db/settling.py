"""SQL for settling a run: what it saw, what it did not, and ending it.

A run's seen set is the vehicles it wrote (they carry its job id in last_job_id) and the
VINs it met without writing, remembered in run_seen (by store's upsert, crawler/db/
vehicles.py, and mark_seen_by_url). Settling a run marks the active vehicles it did not see
removed, with their events, if its verdict allows, and forgets the seen set; before that the
run's report counts what it would remove, the coverage of what it passed over and the events
it recorded. Seen sets no run will settle are dropped by forget_seen_of_ended (the reaper).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import psycopg

from crawler.db.copy_text import array_literal

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
