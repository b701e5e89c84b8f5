"""SQL for the feed fast path's read of a dealer's stored source-row hashes (ingest/feed.py
loads them once a run): streamed in groups, through the dealer's index or by table blocks."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import repeat
from typing import Any

import psycopg

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
