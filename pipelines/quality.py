"""Quality stage: score each vehicle and attach its flags; and the writes that keep scores current.

`batch(vehicles, ctx)` is pure: it scores a batch against a `Context`. `context_for` builds
that context for one batch of a run from the database (market price medians of the models
the run meets, read once each; photos other vehicles use; VINs other dealers list).
`settle_duplicates` runs when a run ends and flags (or clears) cross-dealer duplicates on
every dealer involved; `rescore` recomputes stored vehicles under the current rules.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from decimal import Decimal

import psycopg

from crawler.db import quality as quality_db
from crawler.models import Vehicle, updated
from pipelines import store
from pipelines import vin as vin_stage
from quality import score as score_mod
from quality.score import RULES_VERSION, Context, score


@dataclass
class RunQuality:
    """What one run keeps between batches: market medians of the (make, model, year) keys
    met so far (read from the database the first time a batch holds the key), and the VINs
    other dealers list."""

    price_medians: dict[tuple[str, str, int, str], tuple[Decimal, int]] = field(
        default_factory=dict)
    medians_read: set[tuple[str, str, int, str]] = field(default_factory=set)
    # VINs of this run's vehicles that other dealers list: settled on both sides at the end
    shared_vins: set[str] = field(default_factory=set)
    # first photo -> VINs, of each of the last four batches sent to be written (see
    # pipelines.run: overlapped writes, look-ups read ahead as soon as a batch is staged,
    # up to three batches before it is scored); the database may not hold them yet when a
    # batch's photos are looked up
    unstored_heroes: deque[dict[str, set[str]]] = field(
        default_factory=lambda: deque(maxlen=4))


@dataclass
class Lookups:
    """What the database said about some first photos and VINs: the VINs of active
    vehicles (any dealer) whose first photo each URL is, and which VINs other dealers list.
    `heroes` and `vins` are what was asked."""

    heroes: set[str]
    vins: set[str]
    hero_users: dict[str, set[str]]
    other_dealer_vins: set[str]


def look_up(conn: psycopg.Connection, dealership_id: int, heroes: Collection[str],
            vins: Collection[str]) -> Lookups:
    """The database half of a batch's photo and cross-dealer context (a run reads it for
    the next batch while it scores this one: see pipelines.run)."""
    return Lookups(set(heroes), set(vins), quality_db.hero_photo_users(conn, list(heroes)),
                   quality_db.vins_at_other_dealers(conn, dealership_id, list(vins)))


def context_for(conn: psycopg.Connection, dealership_id: int, vehicles: list[Vehicle],
                state: RunQuality | None = None, ahead: Lookups | None = None) -> Context:
    """The scoring context of one batch.

    Photos: any photo shared inside the batch, and each vehicle's first photo against the
    first photos of active vehicles in the database and of the batches still being written
    (`state.unstored_heroes`; earlier batches of this run are stored already), so nothing
    grows with the size of a run. `ahead`: look-ups read for this batch before it got here
    (what they did not ask is looked up now).
    """
    state = state or RunQuality()
    keys = {score_mod.market_key(v.make, v.model, v.year, v.currency) for v in vehicles
            if v.price is not None and v.make and v.model and v.year}
    keys -= state.medians_read
    if keys:
        state.price_medians.update(quality_db.price_medians_for(
            conn, sorted(keys), score_mod.PRICE_MIN_SAMPLE))
        state.medians_read |= keys
    # Only photos more than one vehicle uses are kept (rule_photos reads a missing photo as
    # used by nobody else): a set per photo of every vehicle cost ~5 us a vehicle.
    owner: dict[str, str] = {}  # each photo of the batch -> the first VIN that uses it
    users: dict[str, set[str]] = {}
    for v in vehicles:
        vin = v.vin
        for url in v.image_urls:
            first = owner.setdefault(url, vin)
            if first != vin:
                users.setdefault(url, {first}).add(vin)
    heroes = {v.image_urls[0] for v in vehicles if v.image_urls}
    vins = {v.vin for v in vehicles if not v.vin_placeholder}
    if ahead is None or not (heroes <= ahead.heroes and vins <= ahead.vins):
        ahead = look_up(conn, dealership_id, heroes, vins)
    for url in heroes:
        found = ahead.hero_users.get(url)
        unstored = [u[url] for u in state.unstored_heroes if url in u]
        if found or unstored:
            every = set().union(users.get(url) or {owner[url]}, found or (), *unstored)
            if len(every) > 1:
                users[url] = every
    others = ahead.other_dealer_vins & vins
    state.shared_vins.update(others)
    return Context(price_medians=state.price_medians, photo_users=users,
                   other_dealer_vins=others)


def remember_unstored(state: RunQuality, vehicles: list[Vehicle]) -> None:
    """Keep a batch's first photos in memory while it is written (see unstored_heroes)."""
    heroes: dict[str, set[str]] = {}
    for v in vehicles:
        if v.image_urls:
            heroes.setdefault(v.image_urls[0], set()).add(v.vin)
    state.unstored_heroes.append(heroes)


def batch(vehicles: list[Vehicle], ctx: Context | None = None) -> list[Vehicle]:
    out = []
    for v in vehicles:
        points, flags = score(v, ctx)
        out.append(updated(v, {"quality_score": points, "quality_flags": flags,
                               "rules_version": RULES_VERSION}))
    return out


def settle_duplicates(conn: psycopg.Connection, dealership_id: int, job_id: int,
                      state: RunQuality) -> int:
    """After a run: flag every active vehicle whose (real) VIN another dealer also lists, on
    both sides, and clear the flag where that is no longer so, for the VINs the run found
    at other dealers or removed. Returns how many vehicles changed."""
    updates = []
    for row in quality_db.duplicate_candidates(conn, dealership_id, job_id,
                                               sorted(state.shared_vins)):
        flags = set(row["quality_flags"])
        has = "cross_dealer_duplicate" in flags
        if row["duplicated"] == has:
            continue
        flags.symmetric_difference_update({"cross_dealer_duplicate"})
        updates.append((row["id"], sorted(flags), score_mod.points(flags)))
    return quality_db.set_flags(conn, updates)


def settle_vanished(conn: psycopg.Connection, vins: Collection[str]) -> int:
    """Clear the cross-dealer flag (and rescore) wherever one of these VINs, just deleted
    with a dealership, is no longer listed by another dealer. Returns how many changed."""
    updates = []
    for row in quality_db.flagged_no_longer_duplicated(conn, sorted(vins)):
        flags = set(row["quality_flags"]) - {"cross_dealer_duplicate"}
        updates.append((row["id"], sorted(flags), score_mod.points(flags)))
    return quality_db.set_flags(conn, updates)


_VEHICLE_FIELDS = set(Vehicle.model_fields)


def vehicle_from_row(row: dict) -> Vehicle:
    data = {k: v for k, v in row.items() if k in _VEHICLE_FIELDS and v is not None}
    return Vehicle.model_validate(data)


def rescore(conn: psycopg.Connection, dealership_id: int | None = None, *,
            batch_size: int = 500, everything: bool = False,
            on_batch: Callable[[int, int], None] | None = None) -> dict[str, int]:
    """Recompute VIN checks, flags and scores of stored vehicles scored under other rules
    (all of them with `everything`), batch by batch. Returns {"seen", "changed"}."""
    seen = changed = 0
    medians = quality_db.price_medians(conn, score_mod.PRICE_MIN_SAMPLE)
    for rows in quality_db.vehicles_to_rescore(conn, dealership_id, RULES_VERSION,
                                               batch_size, everything):
        by_dealer: dict[int, list[tuple[int, Vehicle]]] = {}
        for row in rows:
            by_dealer.setdefault(row["dealership_id"], []).append(
                (row["id"], vehicle_from_row(row)))
        out = []
        for dealer_id, pairs in by_dealer.items():
            vehicles = vin_stage.batch([v for _, v in pairs])
            state = RunQuality(price_medians=medians, medians_read=set(medians))
            vehicles = batch(vehicles, context_for(conn, dealer_id, vehicles, state))
            for (vid, _), v in zip(pairs, vehicles, strict=True):
                out.append((vid, v.vin_decoded, v.vin_placeholder, v.quality_flags,
                            v.quality_score, RULES_VERSION, store.content_hash(v), v.make,
                            v.model))
        seen += len(rows)
        changed += quality_db.write_rescored(conn, out)
        if on_batch is not None:
            on_batch(seen, changed)
    return {"seen": seen, "changed": changed}


def coverage_counts(vehicles: list[Vehicle]) -> dict[str, int]:
    """Per-batch field counts for the gate's coverage check (counters coverage_<field>), of
    scored vehicles: one with no real photo carries the no_photos flag (the photo check is
    not run twice a vehicle)."""
    c = dict.fromkeys(("price", "mileage", "images", "trim", "model", "year", "make",
                       "exterior_color", "description", "condition", "real_vin"), 0)
    for v in vehicles:  # one pass, plain attribute reads: it runs on every stored vehicle
        c["price"] += v.price is not None
        c["mileage"] += v.mileage is not None
        c["images"] += "no_photos" not in v.quality_flags
        c["trim"] += bool(v.trim)
        c["model"] += bool(v.model)
        c["year"] += v.year is not None
        c["make"] += bool(v.make)
        c["exterior_color"] += bool(v.exterior_color)
        c["description"] += bool(v.description)
        c["condition"] += v.condition is not None
        c["real_vin"] += not v.vin_placeholder
    return {"coverage_base": len(vehicles), **{f"coverage_{k}": n for k, n in c.items()}}
