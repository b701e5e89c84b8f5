"""Store stage: the only writer of vehicles. Hashes content so unchanged vehicles cost nothing."""

from __future__ import annotations

import hashlib
import json

import psycopg

from crawler.db import rejects as rejects_db
from crawler.db import vehicles as vehicles_db
from crawler.models import Reject, Vehicle

_NOT_CONTENT = {"source", "source_hash"}


def content_hash(v: Vehicle) -> str:
    """Stable hash of everything about a vehicle that is worth a write when it changes."""
    data = v.model_dump(mode="json", exclude=_NOT_CONTENT)
    blob = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(blob.encode(), digest_size=16).hexdigest()


def batch(conn: psycopg.Connection, dealership_id: int, job_id: int,
          vehicles: list[Vehicle], rejects: list[Reject]) -> dict[str, int]:
    counts = vehicles_db.upsert(conn, dealership_id, job_id,
                                [(v, content_hash(v)) for v in vehicles])
    counts["rejected"] = rejects_db.add(conn, dealership_id, job_id, rejects)
    return counts
