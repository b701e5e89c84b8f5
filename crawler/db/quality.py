"""SQL for quality: market prices, shared photos, cross-dealer duplicates, rescoring, history.

Everything the scoring rules and the run gate need from the rest of the database, and the
writes that keep flags current outside a dealer's own run (a VIN another dealer lists, a
rescore under new rules).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any

import psycopg

from crawler.db.copy_text import array_literal


def price_medians(conn: psycopg.Connection, min_sample: int = 3
                  ) -> dict[tuple[str, str, int, str], tuple[Decimal, int]]:
    """Median asking price per market (make, model lower-cased, year, currency: see
    quality.score.market_key), over active vehicles of every dealership, where at least
    `min_sample` vehicles have a price."""
    rows = conn.execute(
        """
        SELECT lower(make) AS make, lower(model) AS model, year, currency,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY price) AS median, count(*) AS n
          FROM vehicles
         WHERE status = 'active' AND price IS NOT NULL AND make IS NOT NULL
           AND model IS NOT NULL AND year IS NOT NULL
         GROUP BY 1, 2, 3, 4
        HAVING count(*) >= %s
        """,
        (min_sample,),
    ).fetchall()
    return {_market(r): (Decimal(str(r["median"])), int(r["n"])) for r in rows}


def _market(row: dict) -> tuple[str, str, int, str]:
    return row["make"], row["model"], row["year"], (row["currency"] or "USD").upper()


# A run's market median of a model-year reads at most this many listings of it: a sample
# this size puts the median within a few percent, far inside the price-outlier band, and
# keeps the cost bounded (a 1M-vehicle market's 132 model-years cost 3 s read in full).
PRICE_SAMPLE_MAX = 1001


def price_medians_for(conn: psycopg.Connection, keys: Sequence[tuple[str, str, int, str]],
                      min_sample: int = 3, max_sample: int = PRICE_SAMPLE_MAX
                      ) -> dict[tuple[str, str, int, str], tuple[Decimal, int]]:
    """`price_medians` for these markets only: one range of the market index (make, model,
    year, currency: migration 0018) per key, so a run pays for the models it lists, not
    for the table.
    Each median is of at most `max_sample` listings (in index order, which is the order
    they were stored in, not price order); n is how many it read."""
    if not keys:
        return {}
    rows = conn.execute(
        """
        SELECT k.make, k.model, k.year, k.currency, m.median, m.n
          FROM unnest(%s::text[], %s::text[], %s::int[], %s::text[])
               AS k(make, model, year, currency)
         CROSS JOIN LATERAL (
               SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY s.price) AS median,
                      count(*) AS n
                 FROM (SELECT v.price FROM vehicles v
                        WHERE lower(v.make) = k.make AND lower(v.model) = k.model
                          AND v.year = k.year AND v.status = 'active'
                          AND v.price IS NOT NULL AND v.currency = k.currency
                        LIMIT %s) s) m
         WHERE m.n >= %s
        """,
        ([k[0] for k in keys], [k[1] for k in keys], [k[2] for k in keys],
         [k[3] for k in keys], max_sample, min_sample),
    ).fetchall()
    return {_market(r): (Decimal(str(r["median"])), int(r["n"])) for r in rows}


# A photo's users are read from at most this many of its listings: the rules only ask
# whether another vehicle uses it, and a maker's stock photo may head thousands of listings.
HERO_USERS_MAX = 100


def hero_photo_users(conn: psycopg.Connection, urls: Sequence[str]) -> dict[str, set[str]]:
    """For each URL, the VINs of active vehicles (any dealer) whose first photo it is, read
    from at most HERO_USERS_MAX of its listings."""
    if not urls:
        return {}
    # One index probe per URL whatever the planner believes of the table's size (its
    # statistics lag behind a bulk load, and it would then scan every active vehicle); the
    # LIMIT also makes it a plain index scan (a bitmap scan per URL cost a fifth more).
    rows = conn.execute(
        """
        SELECT u.url, h.vins
          FROM unnest(%s::text[]) AS u(url)
         CROSS JOIN LATERAL (
               SELECT array_agg(DISTINCT s.vin) AS vins
                 FROM (SELECT v.vin FROM vehicles v
                        WHERE v.image_urls[1] = u.url AND v.status = 'active'
                        LIMIT %s) s) h
         WHERE h.vins IS NOT NULL
        """,
        (array_literal(urls), HERO_USERS_MAX),
    ).fetchall()
    return {r["url"]: set(r["vins"]) for r in rows}


def vins_at_other_dealers(conn: psycopg.Connection, dealership_id: int,
                          vins: Sequence[str]) -> set[str]:
    """Which of these VINs another dealership lists as active (placeholders never count)."""
    if not vins:
        return set()
    # One probe of the VIN index per VIN, whatever the statistics say: OFFSET 0 keeps the
    # other conditions out of the scan. Without statistics the planner had combined the VIN
    # index with a partial index on status = 'active', reading every active vehicle per VIN.
    rows = conn.execute(
        """
        SELECT u.vin
          FROM unnest(%s::text[]) AS u(vin)
         CROSS JOIN LATERAL (SELECT 1 FROM (SELECT v.dealership_id, v.status, v.vin_placeholder
                                              FROM vehicles v WHERE v.vin = u.vin OFFSET 0) v
                              WHERE v.dealership_id <> %s
                                AND v.status = 'active' AND NOT v.vin_placeholder
                              LIMIT 1) o
        """,
        (array_literal(vins), dealership_id),
    ).fetchall()
    return {r["vin"] for r in rows}


def duplicate_candidates(conn: psycopg.Connection, dealership_id: int, job_id: int,
                         vins: Sequence[str]) -> list[dict[str, Any]]:
    """Every vehicle whose cross-dealer flag may have changed because of one run: any
    dealer's vehicle with one of `vins` (VINs the run found at other dealers) or with a VIN
    the run removed, with whether the VIN is listed as active (and real) by another
    dealership than the vehicle's own. Only rows whose flag must change are returned.

    A run changes who lists a VIN only by adding, relisting or removing it; the VINs it
    added or relisted that another dealer lists are exactly those its batches found there
    (`vins`). So the work follows what changed, not the size of the dealer's inventory."""
    return conn.execute(
        """
        WITH mine AS (
            SELECT unnest(%(vins)s::text[]) AS vin
            UNION
            -- the run's events through the job index ("+ 0" keeps the (dealership_id, vin)
            -- index out: without statistics the planner ANDed it in, reading every event
            -- the dealer ever had)
            SELECT vin FROM vehicle_events
             WHERE job_id = %(j)s AND dealership_id + 0 = %(d)s AND kind = 'removed'
        ), found AS (
            -- every dealer's vehicles with these VINs: one probe of the VIN index per VIN,
            -- whatever the statistics say (OFFSET 0 keeps the subquery a per-VIN probe).
            -- Without statistics the planner read every active vehicle through a partial
            -- index on status = 'active', then seq-scanned the whole table for the rest.
            SELECT f.* FROM mine m CROSS JOIN LATERAL (
                SELECT v.id, v.vin, v.dealership_id, v.quality_flags, v.status,
                       v.vin_placeholder
                  FROM vehicles v WHERE v.vin = m.vin OFFSET 0) f
        ), listed AS (
            SELECT vin FROM found
             WHERE status = 'active' AND NOT vin_placeholder
             GROUP BY vin HAVING count(DISTINCT dealership_id) > 1
        ), candidates AS (
            SELECT f.id, f.vin, f.dealership_id, f.quality_flags,
                   (f.status = 'active' AND NOT f.vin_placeholder
                    AND l.vin IS NOT NULL) AS duplicated
              FROM found f LEFT JOIN listed l USING (vin)
        )
        SELECT * FROM candidates
         WHERE duplicated <> ('cross_dealer_duplicate' = ANY(quality_flags))
        """,
        {"d": dealership_id, "j": job_id, "vins": list(vins)},
    ).fetchall()


def flagged_no_longer_duplicated(conn: psycopg.Connection,
                                 vins: Sequence[str]) -> list[dict[str, Any]]:
    """Vehicles with one of these VINs flagged cross_dealer_duplicate although no other
    dealership than their own lists the VIN as active (and real) any more."""
    # One probe of the VIN index per VIN whatever the statistics say (OFFSET 0 keeps the
    # other conditions out of the scan), as other_dealers_listing does.
    return conn.execute(
        """
        SELECT v.id, v.quality_flags
          FROM unnest(%s::text[]) AS u(vin)
         CROSS JOIN LATERAL (SELECT * FROM vehicles x WHERE x.vin = u.vin OFFSET 0) v
         WHERE 'cross_dealer_duplicate' = ANY(v.quality_flags)
           AND NOT EXISTS (SELECT 1 FROM (SELECT o.dealership_id, o.status, o.vin_placeholder
                                            FROM vehicles o WHERE o.vin = v.vin OFFSET 0) o
                            WHERE o.dealership_id <> v.dealership_id
                              AND o.status = 'active' AND NOT o.vin_placeholder)
        """, (array_literal(sorted(set(vins))),)).fetchall()


def set_flags(conn: psycopg.Connection, updates: Sequence[tuple[int, list[str], int]]) -> int:
    """Write (vehicle id, flags, score) for vehicles whose flags changed outside their run."""
    if not updates:
        return 0
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            "UPDATE vehicles SET quality_flags = %s, quality_score = %s, updated_at = now()"
            " WHERE id = %s",
            [(flags, score, vid) for vid, flags, score in updates],
        )
    return len(updates)


def vehicles_to_rescore(conn: psycopg.Connection, dealership_id: int | None,
                        rules_version: int, batch_size: int = 500,
                        everything: bool = False) -> Iterator[list[dict[str, Any]]]:
    """Stored vehicles scored under other rules (or all with `everything`), one batch of
    rows at a time (keyset pagination: safe while they are rewritten): a dealership's in VIN
    order, every dealership's in id order."""
    # A dealer's batches walk its range of the (dealership_id, vin) unique index on from the
    # last VIN, so a dealer's rescore reads its own vehicles once, in order, and nothing
    # else: no sort per batch whatever the statistics say (a sort of what was left of the
    # dealer, per batch, was quadratic in its size), and no walk of the whole table (which
    # the primary key walk below took for one dealer: 2.1 s for a 300-vehicle dealer's
    # first batch at 3M vehicles).
    if dealership_id is not None:
        yield from _keyset_batches(conn, """
            SELECT * FROM vehicles
             WHERE dealership_id = %(d)s AND vin > %(last)s
               AND (%(all)s OR rules_version IS DISTINCT FROM %(v)s)
             ORDER BY vin LIMIT %(n)s
            """, "vin", "", {"d": dealership_id, "all": everything, "v": rules_version,
                              "n": batch_size})
        return
    # Every dealer's: each batch walks the primary key on from the last id until it has a
    # batch, so a whole rescore reads the table once, whatever the statistics say.
    yield from _keyset_batches(conn, """
        SELECT * FROM vehicles
         WHERE id > %(last)s AND (%(all)s OR rules_version IS DISTINCT FROM %(v)s)
         ORDER BY id LIMIT %(n)s
        """, "id", 0, {"all": everything, "v": rules_version, "n": batch_size})


def _keyset_batches(conn: psycopg.Connection, sql: str, key: str, first: Any,
                    params: dict[str, Any]) -> Iterator[list[dict[str, Any]]]:
    """The rows of `sql` a batch at a time, each batch after the last one's `key`. Sorts
    are off: the batches are read in the order of an index. Without statistics the
    planner took a dealer's range of VINs for a few rows and had them sorted, every batch:
    quadratic in the dealer's size."""
    last = first
    while True:
        with conn.transaction():
            conn.execute("SET LOCAL enable_sort = off")
            rows = conn.execute(sql, {**params, "last": last}).fetchall()
        if not rows:
            return
        yield rows
        last = rows[-1][key]


def write_rescored(conn: psycopg.Connection,
                   rows: Sequence[tuple[int, Any, bool, list[str], int, int, str, str | None,
                                        str | None]]) -> int:
    """Write (id, vin_decoded, vin_placeholder, flags, score, rules_version, content_hash,
    make, model) (make and model as the VIN stage left them: filled from the VIN when the
    vehicle had none); returns how many vehicles actually changed."""
    if not rows:
        return 0
    from psycopg.types.json import Jsonb

    with conn.transaction(), conn.cursor() as cur:
        cur.execute("""CREATE TEMP TABLE IF NOT EXISTS stage_rescore (
                           id bigint, vin_decoded jsonb, vin_placeholder boolean,
                           quality_flags text[], quality_score smallint,
                           rules_version smallint, content_hash text, make text,
                           model text) ON COMMIT DELETE ROWS""")
        with cur.copy("COPY stage_rescore FROM STDIN (FORMAT BINARY)") as cp:
            cp.set_types(["int8", "jsonb", "bool", "text[]", "int2", "int2", "text", "text",
                          "text"])
            for r in rows:
                cp.write_row((r[0], Jsonb(r[1]) if r[1] is not None else None, *r[2:]))
        cur.execute(
            """
            UPDATE vehicles v
               SET vin_decoded = s.vin_decoded, vin_placeholder = s.vin_placeholder,
                   quality_flags = s.quality_flags, quality_score = s.quality_score,
                   rules_version = s.rules_version, content_hash = s.content_hash,
                   make = s.make, model = s.model, updated_at = now()
              FROM stage_rescore s
             WHERE v.id = s.id
               AND (v.quality_flags, v.quality_score, v.rules_version, v.content_hash,
                    v.make, v.model)
                   IS DISTINCT FROM
                   (s.quality_flags, s.quality_score, s.rules_version, s.content_hash,
                    s.make, s.model)
            """
        )
        return cur.rowcount


def worst_vehicles(conn: psycopg.Connection, dealership_id: int, job_id: int | None = None,
                   limit: int = 10) -> list[dict[str, Any]]:
    """The lowest-scored active vehicles (those last written by `job_id`, when given)."""
    return conn.execute(
        """
        SELECT vin, year, make, model, trim, price, quality_score, quality_flags, url
          FROM vehicles
         WHERE dealership_id = %(d)s AND status = 'active'
           AND (%(j)s::bigint IS NULL OR last_job_id = %(j)s)
         ORDER BY quality_score ASC NULLS FIRST, vin LIMIT %(n)s
        """,
        {"d": dealership_id, "j": job_id, "n": limit},
    ).fetchall()


def flag_counts(conn: psycopg.Connection, dealership_id: int) -> dict[str, int]:
    """How many active vehicles carry each flag."""
    rows = conn.execute(
        """
        SELECT f AS flag, count(*) AS n
          FROM vehicles, unnest(quality_flags) AS f
         WHERE dealership_id = %s AND status = 'active'
         GROUP BY f ORDER BY n DESC, f
        """,
        (dealership_id,),
    ).fetchall()
    return {r["flag"]: int(r["n"]) for r in rows}

