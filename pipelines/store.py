"""Store stage: the only writer of vehicles. Hashes content so unchanged vehicles cost nothing."""

from __future__ import annotations

import hashlib
import json
import operator
from typing import Any

import psycopg
from pydantic import BaseModel

from crawler.db import rejects as rejects_db
from crawler.db import vehicles as vehicles_db
from crawler.models import Reject, Vehicle

_NOT_CONTENT = {"source", "source_hash"}


_CONTENT = sorted(f for f in Vehicle.model_fields if f not in _NOT_CONTENT)
_NESTED = _CONTENT.index("vin_decoded")  # the one field that is not a plain value
_VALUES = operator.itemgetter(*_CONTENT)


def content_hash(v: Vehicle, decoded_json: dict[int, str] | None = None) -> str:
    """Stable hash of everything about a vehicle that is worth a write when it changes.

    Read from the field values directly (a model_dump per vehicle cost more than the rest of
    the store stage); nested data is JSON with sorted keys, so dict order never matters.
    `decoded_json`: JSON already made of vin_decoded dicts, by id (the VIN stage shares one
    dict among vehicles with the same decode); filled in as it goes."""
    parts = list(_VALUES(v.__dict__))
    nested = parts[_NESTED]
    if nested is not None:
        text = decoded_json.get(id(nested)) if decoded_json is not None else None
        if text is None:
            text = json.dumps(nested.model_dump(mode="json") if isinstance(nested, BaseModel)
                              else nested, sort_keys=True, default=str)
            if decoded_json is not None:
                decoded_json[id(nested)] = text
        parts[_NESTED] = text
    return hashlib.blake2b(repr(parts).encode(), digest_size=16).hexdigest()


def prepare(vehicles: list[Vehicle]) -> list[tuple[Any, ...]]:
    """A batch's rows as the writes take them, content hashes included. Pure: a run with
    overlapped writes prepares a batch before queueing its write, so the writer thread (the
    longest chain of a re-ingest) does nothing but the COPY and the statement."""
    # filled by content_hash, read by stage_row; ids stay valid: `vehicles` holds every one
    decoded_json: dict[int, str] = {}
    return [vehicles_db.stage_row(v, content_hash(v, decoded_json), decoded_json)
            for v in vehicles]


def write(conn: psycopg.Connection, dealership_id: int, job_id: int,
          rows: list[tuple[Any, ...]], rejects: list[Reject], fresh: bool = False
          ) -> dict[str, int]:
    """Write one prepared batch. `fresh`: the dealership had no vehicles when the run began,
    so the batch is most likely all new and goes in with a plain COPY (an upsert if not)."""
    counts = vehicles_db.insert_new(conn, dealership_id, job_id, rows) if fresh else None
    if counts is None:
        counts = vehicles_db.upsert(conn, dealership_id, job_id, rows)
    counts["rejected"] = rejects_db.add(conn, dealership_id, job_id, rejects)
    return counts


def batch(conn: psycopg.Connection, dealership_id: int, job_id: int,
          vehicles: list[Vehicle], rejects: list[Reject], fresh: bool = False
          ) -> dict[str, int]:
    """Prepare and write one batch (see `write`)."""
    return write(conn, dealership_id, job_id, prepare(vehicles), rejects, fresh)
