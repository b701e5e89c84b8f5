"""The pure per-row stages of a large feed in worker processes.

Mapping a row to an item, normalize, validate and the VIN stage need nothing but the row:
they are the CPU-bound half of a feed's cost. For a large feed they run in a pool of spawned
processes (`FORECOURT_FEED_STAGE_PROCESSES`, started once the feed has sent
`FORECOURT_FEED_STAGE_MIN_ROWS` rows down the full path), while the parent reads, hashes and
skips unchanged rows, and runs dedup, quality and the store, which need the run's state and
the database. Chunks come back in the order they were sent.

Workers are spawned, not forked: the parent may be a threaded worker holding locks and an
open SQLite handle (the vPIC data), neither of which may cross a fork. Vehicles come back as
tuples of field values (a pickled pydantic model costs three times more) and are rebuilt
without validation: they were validated in the worker.
"""

from __future__ import annotations

import csv
import gc
import logging
import multiprocessing
import os
import signal
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from crawler.lifeline import die_with_spawner
from crawler.models import Reject, Vehicle, VehicleItem, built
from ingest import mapping as mapping_mod
from pipelines.stages import stage_items
from quality import vins

# (row number, source row, source-row hash as 16 hex characters)
Work = tuple[int, dict, str]
# How a CSV feed's records are laid out: (header, delimiter, largest field). A CSV row is
# sent to a worker as its record's text (ingest.csv_reader.CsvRow.text) and parsed there
# again: a string pickles twenty times faster than the row's dict.
CsvLayout = tuple[tuple[str, ...], str, int]
Staged = tuple[list[Vehicle], list[Reject], int]  # vehicles, rejects, rows sent

_FIELDS = tuple(Vehicle.model_fields)
_ALL_SET = frozenset(_FIELDS)
log = logging.getLogger(__name__)
_spec: dict[str, Any] = {}
_plans: dict[tuple, mapping_mod.Plan] = {}


def items_of(spec: dict[str, Any], plans: dict[tuple, mapping_mod.Plan],
             work: list[Work]) -> list[VehicleItem]:
    out = []
    for number, row, row_hash in work:
        keys = tuple(row)
        plan = plans.get(keys)
        if plan is None:
            plan = plans[keys] = mapping_mod.Plan(spec, list(keys))
        out.append(plan.item(row, f"row {number}", source_hash=row_hash))
    return out


# The cyclic garbage collector's thresholds while a feed runs (the parent's loop and its
# workers): a feed allocates millions of short-lived, acyclic objects, and with the default
# thresholds the collector re-scanned every live container each 700 allocations, about a
# quarter of each row's time.
GC_THRESHOLDS = (100_000, 50, 100)


def _start(spec: dict[str, Any]) -> None:
    parent = multiprocessing.parent_process()
    die_with_spawner(parent.pid if parent is not None else None)  # not orphaned by a -9
    gc.freeze()  # the imports' objects are never garbage: out of every scan
    gc.set_threshold(*GC_THRESHOLDS)  # the process lives for one run
    _spec.clear()
    _spec.update(spec)
    _plans.clear()


def _parsed(work: list, layout: CsvLayout) -> list[Work]:
    """The chunk with each CSV record's text parsed back into its row."""
    header, delimiter, limit = layout
    csv.field_size_limit(limit)
    values = csv.reader([r for _, r, _ in work if r.__class__ is str], delimiter=delimiter,
                        strict=True)
    return [(n, dict(zip(header, next(values), strict=True)) if r.__class__ is str else r, h)
            for n, r, h in work]


# A chunk is staged this many rows at a time: its items, rows and vehicles are then alive
# a thousand at a time, not five thousand (the worker's peak memory 84 -> ~45 MB above its
# imports); only the values sent back accumulate.
STAGE_ROWS = 1000


def _stage_chunk(work: list[Work], layout: CsvLayout | None = None
                 ) -> tuple[list[tuple], list[Reject]]:
    values: list[tuple] = []
    rejects: list[Reject] = []
    for start in range(0, len(work), STAGE_ROWS):
        part = work[start:start + STAGE_ROWS]
        if layout is not None:
            part = _parsed(part, layout)
        vehicles, refused = stage_items(items_of(_spec, _plans, part))
        values.extend(tuple(v.__dict__.values()) for v in vehicles)
        rejects.extend(refused)
    return values, rejects


def vehicle_from_values(values: tuple) -> Vehicle:
    """A Vehicle from its field values in declaration order, without validating again."""
    return built(Vehicle, dict(zip(_FIELDS, values, strict=True)), set(_ALL_SET))


def _warm() -> int:
    """A worker's first task: its imports are done by now; this opens the vPIC data too."""
    vins.decode("1HGCM82633A004352")
    return os.getpid()


def start_pool(spec: dict[str, Any], processes: int) -> ProcessPoolExecutor:
    """Stage workers, started now: a pool spawns a process only when a task is submitted,
    so each gets a warm-up task at once (a spawned worker takes most of a second to import
    the stages and open the vPIC data; the feed meanwhile loads the dealer's known rows).

    They are spawned (here, by these submits) with SIGINT blocked, a mask that fork and exec
    keep: Ctrl-C at a terminal signals the whole process group, and the parent, which stops
    the run at its next batch and then the pool, is the one to take it. A worker that took
    it would die with a traceback over the progress display, its chunks left to the parent.
    """
    pool = ProcessPoolExecutor(max_workers=processes,
                               mp_context=multiprocessing.get_context("spawn"),
                               initializer=_start, initargs=(spec,))
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        for _ in range(processes):
            pool.submit(_warm)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    return pool


def submit(pool: ProcessPoolExecutor, pending: deque, work: list[Work],
           layout: CsvLayout | None = None) -> bool:
    """Send a chunk to the workers (CSV rows as their text, given the feed's `layout`: only
    the text is kept for `ready`, not the parsed rows). False when they are gone: the chunk
    is then queued to be staged in the parent, in its turn, and the caller should stop the
    pool."""
    sent = work if layout is None else [(n, getattr(r, "text", r), h) for n, r, h in work]
    try:
        future: Future = (pool.submit(_stage_chunk, sent) if layout is None
                          else pool.submit(_stage_chunk, sent, layout))
    except BrokenProcessPool as exc:
        future = Future()
        future.set_exception(exc)
        pending.append((future, sent, layout))
        return False
    pending.append((future, sent, layout))
    return True


def ready(pending: deque, keep: int, spec: dict[str, Any],
          plans: dict[tuple, mapping_mod.Plan]) -> Iterator[tuple[Future, Staged]]:
    """Results of the oldest chunks, in order (each with its future), until at most `keep`
    are left in flight.

    A chunk whose worker died (killed, out of memory) is staged here instead, so the run
    loses nothing; the caller stops sending chunks when `submit` says the pool is broken."""
    while len(pending) > keep:
        future, sent, layout = pending.popleft()
        try:
            values, rejects = future.result()
        except BrokenProcessPool:
            log.warning("feed stage worker died; staging %d rows in the parent", len(sent))
            work = sent if layout is None else _parsed(sent, layout)
            vehicles, rejects = stage_items(items_of(spec, plans, work))
            yield future, (vehicles, rejects, len(sent))
            continue
        yield future, ([vehicle_from_values(v) for v in values], rejects, len(sent))


_VIN, _IMAGES, _PLACEHOLDER = (_FIELDS.index(f) for f in ("vin", "image_urls",
                                                            "vin_placeholder"))


def lookup_keys(values: list[tuple]) -> tuple[set[str], set[str]]:
    """The first photos and real VINs of a staged chunk's vehicles (for
    pipelines.run.read_ahead)."""
    return ({v[_IMAGES][0] for v in values if v[_IMAGES]},
            {v[_VIN] for v in values if not v[_PLACEHOLDER]})


def stop(pool: ProcessPoolExecutor | None) -> None:
    if pool is not None:
        pool.shutdown(wait=True, cancel_futures=True)
