"""The feed's stage worker processes: what comes back is what the parent would stage, and a
worker that dies loses no rows."""

from __future__ import annotations

import os
import sys
from collections import deque

from crawler.config import PROJECT_ROOT
from ingest import mapping, workers
from pipelines.stages import stage_items

sys.path.insert(0, str(PROJECT_ROOT / "fixtures" / "tools"))
import make_feed  # noqa: E402


def work_of(n: int) -> list[workers.Work]:
    return [(i + 1, dict(zip(make_feed.HEADER, row, strict=True)), f"{i:016x}")
            for i, row in enumerate(make_feed.rows(n, seed=9))]


def local(spec, work):
    return stage_items(workers.items_of(spec, {}, work))


def test_workers_stage_what_the_parent_would_and_a_dead_one_loses_nothing():
    work = work_of(30)
    _, spec = mapping.choose(list(make_feed.HEADER))
    pool = workers.start_pool(spec, 1)
    try:
        pending: deque = deque()
        assert workers.submit(pool, pending, work[:10])
        [(_, (vehicles, rejects, sent))] = list(workers.ready(pending, 0, spec, {}))
        assert sent == 10 and rejects == [] and vehicles == local(spec, work[:10])[0]

        death = pool.submit(os._exit, 1)  # the worker process dies...
        workers.submit(pool, pending, work[10:20])  # ...with this chunk queued behind it
        death.exception()
        accepted = workers.submit(pool, pending, work[20:])
        staged = [batch for _, batch in workers.ready(pending, 0, spec, {})]
    finally:
        workers.stop(pool)
    assert not accepted  # the caller is told to carry on without workers
    assert [sent for _, _, sent in staged] == [10, 10]  # both chunks, in order
    assert [v for vehicles, _, _ in staged for v in vehicles] == local(spec, work[10:])[0]


def test_workers_run_with_the_feed_loops_garbage_collector_settings():
    import gc

    _, spec = mapping.choose(list(make_feed.HEADER))
    pool = workers.start_pool(spec, 1)
    try:  # the default thresholds cost a worker about a quarter of each row's time
        assert pool.submit(gc.get_threshold).result() == workers.GC_THRESHOLDS
        assert pool.submit(gc.get_freeze_count).result() > 0
    finally:
        workers.stop(pool)
    assert gc.get_threshold() != workers.GC_THRESHOLDS  # the parent's own are untouched


def test_a_chunk_staged_a_few_rows_at_a_time_gives_what_staging_it_whole_does(monkeypatch):
    import csv
    import io

    work = work_of(25)
    work[7][1]["VIN"] = ""  # a reject in the second part
    _, spec = mapping.choose(list(make_feed.HEADER))
    workers._start(spec)
    whole = workers._stage_chunk(work)
    monkeypatch.setattr(workers, "STAGE_ROWS", 4)
    parts = workers._stage_chunk(work)
    assert parts[0] == whole[0] and len(parts[0]) == 24
    assert [r.source for r in parts[1]] == [r.source for r in whole[1]] == ["row 8"]
    # and CSV records sent as text are parsed back into the same rows
    texts = []
    for n, row, h in work:
        out = io.StringIO()
        csv.writer(out).writerow(row.values())
        texts.append((n, out.getvalue().rstrip("\r\n"), h))
    layout = (tuple(make_feed.HEADER), ",", 1_000_000)
    assert workers._stage_chunk(texts, layout)[0] == whole[0]


def test_a_csv_chunk_whose_worker_died_is_parsed_from_its_text_in_the_parent():
    import csv
    import io

    from ingest.csv_reader import CsvRow

    work = work_of(12)
    rows = []
    for n, row, h in work:  # as the CSV reader hands them over: rows knowing their text
        out = io.StringIO()
        csv.writer(out).writerow(row.values())
        csv_row = CsvRow(row)
        csv_row.text = out.getvalue().rstrip("\r\n")
        rows.append((n, csv_row, h))
    layout = (tuple(make_feed.HEADER), ",", 1_000_000)
    _, spec = mapping.choose(list(make_feed.HEADER))
    pool = workers.start_pool(spec, 1)
    try:
        pending: deque = deque()
        pool.submit(os._exit, 1).exception()  # the worker process dies first
        workers.submit(pool, pending, rows, layout)
        assert all(isinstance(r, str) for _, r, _ in pending[0][1])  # only text is kept
        [(_, (vehicles, rejects, sent))] = list(workers.ready(pending, 0, spec, {}))
    finally:
        workers.stop(pool)
    assert sent == 12 and rejects == []
    assert vehicles == local(spec, work)[0]


def test_the_pool_starts_its_workers_at_once_not_at_the_first_chunk():
    import psutil

    _, spec = mapping.choose(list(make_feed.HEADER))
    before = {p.pid for p in psutil.Process().children()}
    pool = workers.start_pool(spec, 2)
    try:  # spawned by start_pool itself: they import while the feed loads its known rows
        started = {p.pid for p in psutil.Process().children()} - before
        assert len(started) >= 2
        assert {pool.submit(os.getpid).result() for _ in range(8)} <= started
    finally:
        workers.stop(pool)


def test_a_ctrl_c_at_the_terminal_is_left_to_the_parent_not_the_stage_workers(capfd):
    """Ctrl-C at a terminal signals the whole foreground process group, the stage workers
    too; the parent stops the run at its next batch and stops the pool. A worker that took
    it would die with a KeyboardInterrupt traceback (printed under the progress display)
    and leave its chunks to be staged in the parent of a run being stopped."""
    import signal
    import time

    import psutil

    _, spec = mapping.choose(list(make_feed.HEADER))
    before = {p.pid for p in psutil.Process().children()}
    pool = workers.start_pool(spec, 2)
    try:
        started = {p.pid for p in psutil.Process().children()} - before
        for pid in started:  # while they import, and again once they wait for work
            os.kill(pid, signal.SIGINT)
        assert {pool.submit(os.getpid).result(timeout=60) for _ in range(8)} <= started
        for pid in started:
            os.kill(pid, signal.SIGINT)
        time.sleep(0.5)
        pending: deque = deque()
        assert workers.submit(pool, pending, work_of(5))
        [(_, (vehicles, rejects, sent))] = list(workers.ready(pending, 0, spec, {}))
        assert sent == 5 and len(vehicles) + len(rejects) == 5
    finally:
        workers.stop(pool)
    assert "KeyboardInterrupt" not in capfd.readouterr().err
