"""The feed loop: read a feed in batches, skip unchanged rows, run every pipeline stage on
the rest, settle the run.

Fast path: every source row is hashed (xxh3, 64 bits, seeded by the mapping in use and
PIPELINE_VERSION): a CSV record as it is in the file (its bytes; for UTF-16, its text as
UTF-8), any other row as its values. The dealer's active vehicles' row hashes are loaded
once per run into a dict of ints (hash -> VIN as dedup keeps it, about 120 bytes a
vehicle); a row whose hash is in it is the very row that produced a stored vehicle, so its
hash is struck from the dict and its VIN remembered for dedup: no validation, no write, not
even a "seen" row. A CSV record is looked up before it is decoded or parsed (its first
line's bytes are hashed; a line that is a stored record is a whole record), so an
unchanged CSV row costs a hash and a dict look-up. The hashes left when the feed ends name
the vehicles no row carried; settling the run removes those (unless written).
Everything else goes through normalize, validate, VIN, dedup, quality and store like crawled
items, and store writes the row hash with the vehicle.

A feed job around the loop (fetching, an unchanged feed, the job's record) is in
ingest/feed_job.py.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from itertools import chain, islice
from pathlib import Path
from typing import Any

import psycopg
import xxhash

from crawler.config import get_settings
from crawler.db import jobs as jobs_db
from crawler.db import settling as settling_db
from crawler.db import source_hashes as source_hashes_db
from crawler.errors import Permanent, TakenOver
from crawler.models import Reject
from ingest import mapping as mapping_mod
from ingest import readers, workers
from ingest.csv_reader import CsvRow
from ingest.rows import Unreadable
from pipelines import dedup, store
from pipelines import run as run_mod

# Bump when normalize/validate/quality rules change what a row becomes: every row then takes
# the full path once, and no fetched feed is judged unchanged against validators recorded
# under the old version (ingest/feed_job.py, feed_fingerprint).
PIPELINE_VERSION = "9"
MAX_UNKNOWN_LISTED = 50


def _hashers(spec: dict[str, Any], columns: list[str]
             ) -> tuple[Callable[[dict], int], Callable[[bytes], int]]:
    """(hash of a row's names and values, hash of a CSV record's bytes): 64-bit xxh3 (a
    fifth of blake2b's cost, which was a third of an unchanged row's), seeded by the mapping
    in use, PIPELINE_VERSION and `columns`: a CSV header, in order, which gives a record's
    bytes their meaning. Other rows carry their names, so they are hashed with them and
    `columns` is empty: a seed drawn from the names in the first rows would change with
    those rows (one record without a field re-processed every row)."""
    seed = int.from_bytes(hashlib.blake2b(
        "\x1e".join([PIPELINE_VERSION, json.dumps(spec, sort_keys=True, default=str),
                     *columns]).encode(), digest_size=8).digest(), "big")
    xxh3 = xxhash.xxh3_64_intdigest
    flat = chain.from_iterable

    def row_hash(row: dict) -> int:
        try:
            text = "\x1f".join(flat(row.items()))  # all strings: name, value, name, ...
        except TypeError:
            text = json.dumps(row, ensure_ascii=False, default=str)
        return xxh3(text.encode(), seed)

    return row_hash, partial(xxh3, seed=seed)


def _load_known(conn: psycopg.Connection, dealership_id: int, known: dict[int, int | str],
                unhashed: list[str]) -> None:
    """Fill `known` (source-row hash -> VIN key) with the dealer's active vehicles, and
    `unhashed` with the VINs of those without a source-row hash (crawled, say)."""
    for hashes, vins in source_hashes_db.source_hashes(conn, dealership_id):
        if None in hashes:
            unhashed.extend(v for h, v in zip(hashes, vins, strict=True) if h is None)
            vins = [v for h, v in zip(hashes, vins, strict=True) if h is not None]
            hashes = [h for h in hashes if h is not None]
        known.update(zip(hashes, dedup.vin_keys(vins), strict=True))


def _not_met(known: dict[int, int | str], unhashed: list[str], seen: dedup.VinsOnly
             ) -> list[str]:
    """VINs of the active vehicles a feed run did not meet: those whose source row no row
    carried (the hashes left in `known`) and those without a source-row hash, less every
    VIN a valid row of the run carried (a re-priced row's vehicle left its old hash)."""
    out = [dedup.vin_of_key(key) for key in known.values() if not seen.holds_key(key)]
    out.extend(vin for vin in unhashed if vin not in seen)
    return out


@dataclass
class _Aheads:
    """Look-ups read ahead for chunks in flight, by chunk number (see _read_ahead). Chunks
    are finished in order; `finished` is the number of the last one."""

    number: dict[Future, int] = field(default_factory=dict)  # of each chunk in flight
    looks: dict[int, Future] = field(default_factory=dict)
    sent: int = 0
    finished: int = 0


def _store_staged(run: run_mod.Run, staging: deque, keep: int, spec: dict[str, Any],
                  plans: dict[tuple, mapping_mod.Plan], aheads: _Aheads) -> None:
    """Finish the chunks the workers have staged, oldest first, leaving `keep` in flight."""
    for future, staged in workers.ready(staging, keep, spec, plans):
        aheads.finished = aheads.number.pop(future, aheads.finished)
        run_mod.process_staged(run, *staged, ahead=aheads.looks.pop(aheads.finished, None))


def _read_ahead(run: run_mod.Run, aheads: _Aheads, number: int, future: Future) -> None:
    """Done-callback of chunk `number` sent to a worker: start reading its look-ups at once
    (the parent is still scoring earlier chunks). Runs in the pool's manager thread: a chunk
    finished meanwhile gets none, and keeps none."""
    if future.cancelled() or future.exception() is not None:
        return
    ahead = run_mod.read_ahead(run, *workers.lookup_keys(future.result()[0]))
    if ahead is not None:
        aheads.looks[number] = ahead
        if number <= aheads.finished:  # too late: the chunk was finished without it
            aheads.looks.pop(number, None)


def _batches(rows: Iterator, size: int) -> Iterator[list]:
    while True:
        chunk = list(islice(rows, size))
        if not chunk:
            return
        yield chunk


def ingest(conn: psycopg.Connection, dealership_id: int, job_id: int, source: str | Path, *,
           fmt: str | None = None, mapping: dict[str, Any] | None = None,
           on_batch: Callable[[dict[str, int]], None] | None = None,
           attempt: int | None = None) -> dict[str, Any]:
    """Ingest one feed file for one dealership as job `job_id`; returns the run report.
    `attempt`: the one its worker claimed (else the job's as its row says when the run
    opens); once another has taken the job over, TakenOver is raised, nothing written."""
    started = time.monotonic()
    path = Path(source)
    if not path.is_file():
        raise Permanent(f"no feed file {str(path)!r}",
                                hint="give an existing file, or an http(s) URL")
    settings = get_settings()
    # A redelivered attempt (its predecessor died mid-run) starts from a clean seen set
    # (not the one of an attempt that took this one over).
    cleared = settling_db.settle_run(conn, dealership_id, job_id, remove_unseen=False,
                                     attempt=None if attempt is None else (attempt, "running"))
    if cleared.get("superseded"):
        now = jobs_db.get(conn, job_id)
        raise TakenOver(job_id, attempt or 0, now.attempts, now.state)
    run = run_mod.open_run(conn, dealership_id, job_id, "feed", vins_only=True,
                           overlap_writes=True, attempt=attempt)
    run_mod.report_progress(run, phase="ingesting", force=True)
    info: dict[str, Any] = {}
    complete, problems = True, []
    plans: dict[tuple, mapping_mod.Plan] = {}
    spec: dict[str, Any] | None = None
    mapping_name = ""
    known: dict[int, int | str] = {}  # source-row hash -> VIN key (dedup.vin_key)
    unhashed: list[str] = []  # VINs of active vehicles without a source-row hash
    row_hash: Callable[[dict], int] | None = None
    text_hash: Callable[[bytes], int] | None = None
    skipped = [0, 0]  # CSV records the reader skipped: VINs new to the run, duplicates
    unknown: dict[str, None] = {}
    seen = run.seen
    processes, full_rows, pooled_rows = max(0, settings.feed_stage_processes), 0, 0
    # A large file starts its workers as soon as its mapping is known, while the dealer's
    # known rows load (they take seconds to start, and the other core is idle then); a
    # re-ingest that changes 10% of a million rows would otherwise stage its first 20,000
    # in the parent.
    large = path.stat().st_size >= settings.feed_stage_min_bytes
    pool: ProcessPoolExecutor | None = None
    staging: deque = deque()
    aheads = _Aheads()
    layout: workers.CsvLayout | None = None  # a CSV feed's, once rows go to the workers

    def unchanged(line: bytes) -> bool:
        """Whether a CSV line (without its terminator) is a record the stored inventory came
        from (then skipped)."""
        if not known or text_hash is None:
            return False
        key = known.pop(text_hash(line), None)
        if key is None:
            return False
        skipped[0 if seen.add_key(key) else 1] += 1
        return True

    def stage(work: list[workers.Work]) -> None:
        """Rows down the full path: in the parent, or sent to the stage workers."""
        nonlocal pool, processes, full_rows, pooled_rows, layout
        if (pool is None and processes
                and (large or full_rows >= settings.feed_stage_min_rows)):
            pool = workers.start_pool(spec, processes)
        full_rows += len(work)
        if pool is None:
            _store_staged(run, staging, 0, spec, plans, aheads)  # chunks sent before, in order
            run_mod.process(run, workers.items_of(spec, plans, work))
            return
        # chunks in flight: one a worker is staging, one waiting for each
        if layout is None and type(work[0][1]) is CsvRow:
            layout = (tuple(work[0][1]), info["delimiter"], settings.feed_max_record_chars)
        if workers.submit(pool, staging, work, layout):
            pooled_rows += len(work)
            future = staging[-1][0]
            aheads.sent += 1
            aheads.number[future] = aheads.sent
            future.add_done_callback(partial(_read_ahead, run, aheads, aheads.sent))
        else:  # the workers died: the parent carries on alone
            workers.stop(pool)
            pool, processes = None, 0
        _store_staged(run, staging, 2 * processes, spec, plans, aheads)

    # Rows for the full path gather across chunks into batches of at least half a chunk:
    # a re-ingest that changed 10% of its rows would otherwise stage and store batches a
    # tenth of the size, each paying a batch's fixed costs (quality context, upsert, commit).
    work: list[workers.Work] = []
    try:
        rows = readers.read(path, fmt, info, unchanged=unchanged)
        for chunk in _batches(rows, settings.feed_batch_size):
            if spec is None:
                columns = list(dict.fromkeys(k for _, r in chunk[:200] if isinstance(r, dict)
                                             for k in r))
                mapping_name, spec = mapping_mod.choose(columns, mapping)
                row_hash, text_hash = _hashers(
                    spec, columns if info.get("format") in ("csv", "tsv") else [])
                if large and processes:
                    pool = workers.start_pool(spec, processes)
                _load_known(conn, dealership_id, known, unhashed)
            broken, fast = [], 0
            duplicates = 0
            for number, row in chunk:
                if row is None:  # skipped by `unchanged`, counted there
                    continue
                if isinstance(row, Unreadable):
                    # a car whose row names its VIN is listed: seen, not removed
                    broken.append(Reject(source=f"row {number}", reasons=[row.reason],
                                         payload={"raw": row.raw} if row.raw else None,
                                         vin=row.vin))
                    if row.fatal:
                        complete = False
                        problems.append(f"feed not read to its end: {row.reason}")
                    continue
                keys = tuple(row)
                plan = plans.get(keys)
                if plan is None:
                    plan = plans[keys] = mapping_mod.Plan(spec, list(keys))
                    unknown.update(dict.fromkeys(plan.unknown))
                h = text_hash(row.raw) if type(row) is CsvRow else row_hash(row)
                key = known.pop(h, None)  # what is left at the end was not seen
                if key is not None:
                    if seen.add_key(key):
                        fast += 1
                    else:
                        duplicates += 1
                    continue
                work.append((number, row, f"{h:016x}"))
            fast, duplicates = fast + skipped[0], duplicates + skipped[1]
            skipped[:] = (0, 0)
            if broken:
                store.write_rejects(conn, dealership_id, job_id, broken, attempt=run.attempt)
                run.counters["items"] += len(broken)
                run.counters["rejected"] += len(broken)
            if fast or duplicates:
                n = fast + duplicates
                run.counters["items"] += n
                run.counters["valid"] += n
                run.counters["unchanged"] += fast
                run.counters["duplicates"] += duplicates
            run.counters["unknown_columns"] = len(unknown)
            if len(work) >= settings.feed_batch_size // 2:
                stage(work)
                work = []
            if on_batch is not None:
                on_batch(dict(run.counters))
        if work:
            stage(work)
        _store_staged(run, staging, 0, spec, plans, aheads)
        run_mod.wait_for_writes(run)  # a failed last batch fails the run here
    except BaseException:
        run_mod.give_up(run)
        raise
    finally:
        workers.stop(pool)
    header_columns = info.pop("header_columns", None)
    if spec is None and complete:  # not one row, readable or not: the file says why
        problems.append(_no_rows(info, header_columns))
    report = run_mod.close(run, complete=complete, problems=problems,
                           candidates=None if row_hash is None
                           else _not_met(known, unhashed, seen))
    duplicates = info.pop("duplicate_columns", None)
    if duplicates:  # a repeat is read as 'Name (2)': reported, never mapped over the first
        report["duplicate_columns"] = duplicates
    report["feed"] = {**info, "mapping": mapping_name or None,
                      "rows_staged_in_workers": pooled_rows}
    report["unknown_columns"] = list(unknown)[:MAX_UNKNOWN_LISTED]
    report["seconds"] = round(time.monotonic() - started, 3)
    return report


def _no_rows(info: dict[str, Any], header_columns: int | None) -> str:
    """Why a feed gave no row at all, with the fix: the gate alone says "no vehicles
    found", as of a site whose listing came back empty."""
    name = info.get("file") or "the feed"
    if header_columns:
        return f"{name} has a header ({header_columns} columns) but no rows: check the export"
    if info.get("format") in ("csv", "tsv"):
        return f"{name} is empty: check the export"
    return f"{name} holds no vehicle records: check the export"
