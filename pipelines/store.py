"""Store stage: the only writer of vehicles. Hashes content so unchanged vehicles cost nothing."""

from __future__ import annotations

import psycopg
import xxhash

from crawler.db import copy_text
from crawler.db import jobs as jobs_db
from crawler.db import rejects as rejects_db
from crawler.db import vehicles as vehicles_db
from crawler.models import Reject, Vehicle

_HASH = xxhash.xxh3_128_hexdigest


def content_hash(v: Vehicle) -> str:
    """Stable hash of everything about a vehicle that is worth a write when it changes: its
    content and scores as COPY text (so the text a write sends is the text hashed), not
    where it was seen (source, source_hash)."""
    return _hash(copy_text.copy_body(v), copy_text.copy_scores(v))


def _hash(body: str, scores: str) -> str:
    return _HASH(f"{body}\t{scores}".encode())


def prepare(vehicles: list[Vehicle]) -> list[str]:
    """A batch's COPY lines as the writes take them, content hashes included. Pure: a run
    with overlapped writes prepares a batch before queueing its write, so the writer thread
    (the longest chain of a re-ingest) does nothing but the COPY and the statement."""
    json_of: dict[int, str] = {}  # ids stay valid: `vehicles` holds every one
    lines = []
    for v in vehicles:
        body = copy_text.copy_body(v, json_of)
        scores = copy_text.copy_scores(v)
        lines.append(copy_text.copy_line(body, scores, v, _hash(body, scores)))
    return lines


def write(conn: psycopg.Connection, dealership_id: int, job_id: int, lines: list[str],
          vehicles: list[Vehicle], rejects: list[Reject], fresh: bool = False,
          attempt: tuple[int, str] | None = None) -> dict[str, int]:
    """Write one prepared batch (`lines`, of `vehicles`) and its rejects, in one
    transaction. `fresh`: the dealership had no vehicles when the run began, so the batch
    is most likely all new and goes in with a plain COPY (an upsert if not). `attempt`: the
    run's attempt of the job (pipelines.run.Run.attempt); once another attempt has taken
    the job over (or it ended) nothing is written and TakenOver is raised
    (crawler.db.jobs.fence), and a take-over waits for a batch being written to commit."""
    with conn.transaction():
        if attempt is not None:
            jobs_db.fence(conn, job_id, attempt)
        counts = (vehicles_db.insert_new(conn, dealership_id, job_id, lines, vehicles)
                  if fresh else None)
        if counts is None:
            counts = vehicles_db.upsert(conn, dealership_id, job_id, lines)
        counts["rejected"] = rejects_db.add(conn, dealership_id, job_id, rejects)
    return counts


def write_rejects(conn: psycopg.Connection, dealership_id: int, job_id: int,
                  rejects: list[Reject], attempt: tuple[int, str] | None = None) -> int:
    """Write rejects that come without a batch (a feed's unreadable rows), fenced by the
    run's `attempt` as a batch is (see `write`). Returns how many."""
    if not rejects:
        return 0
    with conn.transaction():
        if attempt is not None:
            jobs_db.fence(conn, job_id, attempt)
        return rejects_db.add(conn, dealership_id, job_id, rejects)


def batch(conn: psycopg.Connection, dealership_id: int, job_id: int,
          vehicles: list[Vehicle], rejects: list[Reject], fresh: bool = False,
          attempt: tuple[int, str] | None = None) -> dict[str, int]:
    """Prepare and write one batch (see `write`)."""
    return write(conn, dealership_id, job_id, prepare(vehicles), vehicles, rejects, fresh,
                 attempt)
