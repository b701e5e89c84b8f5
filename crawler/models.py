"""The records that cross module boundaries.

`VehicleItem` is what a source (spider or feed reader) yields: raw fields exactly as found,
plus where they came from. `Vehicle` is the canonical record the pipeline stages produce and
`store` writes. Everything between is a stage function over batches.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal, TypeVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

Condition = Literal["new", "used", "certified"]
M = TypeVar("M", bound=BaseModel)


class VehicleItem(BaseModel):
    """Raw vehicle fields from one source location. Values are whatever the source sent."""

    model_config = ConfigDict(extra="allow")

    source: str = Field(description="URL, or 'row N' of a feed, the item came from")
    vin: Any = None
    stock_number: Any = None
    condition: Any = None
    # A separate certified pre-owned flag (Google's certified_pre_owned, a yes/no column)
    certified: Any = None
    year: Any = None
    make: Any = None
    model: Any = None
    trim: Any = None
    body_style: Any = None
    exterior_color: Any = None
    interior_color: Any = None
    transmission: Any = None
    drivetrain: Any = None
    fuel_type: Any = None
    engine: Any = None
    mileage: Any = None
    mileage_unit: Any = None
    price: Any = None
    # Labelled prices when a page offers several (e.g. {"msrp": ..., "final": ...}).
    prices: dict[str, Any] | None = None
    msrp: Any = None
    currency: Any = None
    availability: Any = None
    url: Any = None
    image_urls: Any = None
    description: Any = None
    # The source's own fields, kept for rejects and debugging.
    raw: dict[str, Any] | None = None


_ITEM_FIELDS = frozenset(VehicleItem.model_fields)
_ITEM_EMPTY = dict.fromkeys(VehicleItem.model_fields)  # every default is None


def built(cls: type[M], values: dict[str, Any], fields_set: set[str],
          extra: dict[str, Any] | None = None) -> M:
    """An instance of a pydantic model from values already checked, without validating them
    again (what `model_construct` does, at a fraction of its cost). `values` must hold every
    field, in declaration order (as validation gives them)."""
    obj = object.__new__(cls)
    object.__setattr__(obj, "__dict__", values)
    object.__setattr__(obj, "__pydantic_fields_set__", fields_set)
    object.__setattr__(obj, "__pydantic_extra__", extra)
    object.__setattr__(obj, "__pydantic_private__", None)
    return obj


def raw_item(source: str, fields: dict[str, Any], raw: dict[str, Any] | None = None,
             **extra: Any) -> VehicleItem:
    """A VehicleItem built without validation, for feeds (every field is Any, so there is
    nothing to validate). What `VehicleItem.model_construct` does, at a tenth of its cost
    (pydantic's generic constructor resolves each field's default on every call): ~2 us
    instead of ~20, per row of a million-row feed."""
    if not fields.keys() <= _ITEM_FIELDS:  # a name that is no field is kept as an extra
        extra = {**{k: v for k, v in fields.items() if k not in _ITEM_FIELDS}, **extra}
        fields = {k: v for k, v in fields.items() if k in _ITEM_FIELDS}
    values = dict(_ITEM_EMPTY)
    values.update(fields)
    values["source"], values["raw"] = source, raw
    return built(VehicleItem, values,
                 {"source", *fields, *extra, *(("raw",) if raw is not None else ())}, extra)


class Vehicle(BaseModel):
    """The canonical vehicle record."""

    vin: str
    source: str
    stock_number: str | None = None
    condition: Condition | None = None
    year: int | None = None
    make: str | None = None
    model: str | None = None
    trim: str | None = None
    body_style: str | None = None
    exterior_color: str | None = None
    interior_color: str | None = None
    transmission: str | None = None
    drivetrain: str | None = None
    fuel_type: str | None = None
    engine: str | None = None
    mileage: int | None = None
    price: Decimal | None = None
    msrp: Decimal | None = None
    currency: str = "USD"
    availability: str | None = None
    url: str | None = None
    image_urls: list[str] = Field(default_factory=list)
    description: str | None = None
    vin_decoded: dict[str, Any] | None = None
    vin_placeholder: bool = False
    quality_score: int | None = None
    quality_flags: list[str] = Field(default_factory=list)
    source_hash: str | None = None
    # Version of the scoring rules that set quality_score (quality/score.py RULES_VERSION).
    rules_version: int | None = None


# Every field in declaration order, with its default (None where it has none): the
# template canonical_vehicle fills, so the values keep pydantic's own field order.
_VEHICLE_TEMPLATE = {name: None if f.is_required() else f.get_default(call_default_factory=True)
                     for name, f in Vehicle.model_fields.items()}


def canonical_vehicle(**values: Any) -> Vehicle:
    """A Vehicle from values the normalizers made, without validating them again: they are
    canonical already (tests/properties checks each normalizer's type, and that such a
    vehicle equals a validated one), and pydantic's validation was a twentieth of
    normalize's cost per row. Unset fields take their defaults (a fresh list where the
    default is one)."""
    full = dict(_VEHICLE_TEMPLATE)
    full.update(values)
    if "image_urls" not in values:
        full["image_urls"] = []
    if "quality_flags" not in values:
        full["quality_flags"] = []
    return built(Vehicle, full, set(values))


def updated(vehicle: Vehicle, changes: dict[str, Any]) -> Vehicle:
    """`vehicle.model_copy(update=changes)` at a fifth of its cost (the stages copy every
    vehicle of a feed twice). Like model_copy, it does not validate `changes`: they are the
    stages' own values."""
    values = vehicle.__dict__.copy()
    values.update(changes)
    return built(Vehicle, values, vehicle.__pydantic_fields_set__ | changes.keys())


class Reject(BaseModel):
    """An item or row that could not become a vehicle, with every reason."""

    source: str
    reasons: list[str]
    payload: dict[str, Any] | None = None
    # The row's VIN when it is well formed: the vehicle is still listed, so the run counts
    # it as seen and does not remove it (its stored record stays as it was).
    vin: str | None = None
    # Without a well-formed VIN, the row's URL: when it names exactly one of the dealer's
    # active vehicles (a listing whose VIN was unreadable this time), that one is seen.
    url: str | None = None


class Dealership(BaseModel):
    id: int
    slug: str
    name: str
    website_url: str | None = None
    platform: str | None = None
    feed_url: str | None = None
    feed_format: str | None = None
    feed_mapping: dict[str, Any] | None = None
    schedule_cron: str | None = None
    schedule_tz: str = "UTC"
    schedule_interval_s: int | None = None
    paused: bool = False
    settings: dict[str, Any] = Field(default_factory=dict)
    webhook_url: str | None = None
    created_at: datetime | None = None


JobKind = Literal["crawl", "feed"]
JobTrigger = Literal["schedule", "operator", "api", "retry", "demo"]
JobState = Literal["queued", "running", "succeeded", "partial", "failed", "blocked",
                   "cancelled", "dead"]
FINAL_STATES = ("succeeded", "partial", "failed", "blocked", "cancelled", "dead")


class Job(BaseModel):
    id: int  # the job's number: one sequence over every dealership, for inside use only
    # What the HTTP API names the job by (migration 0019): random, so a dealer's jobs say
    # nothing of how many others ran. None only for a row read before the migration.
    public_id: UUID | None = None
    dealership_id: int
    kind: JobKind
    trigger: JobTrigger
    state: JobState
    phase: str | None = None
    attempts: int = 0
    params: dict[str, Any] = Field(default_factory=dict)
    counters: dict[str, int] = Field(default_factory=dict)
    verdict: str | None = None
    report: dict[str, Any] | None = None
    error: str | None = None
    error_kind: str | None = None
    errors: list[Any] = Field(default_factory=list)
    worker: str | None = None
    message_id: str | None = None
    # When Redis took the job's current message; None while it is not sent (migration 0012)
    message_sent_at: datetime | None = None
    # Job queue (migration 0003): queue name, pending retry, cancel request, replay link.
    queue: str | None = None
    # The current message's id while it waits on the render queue beside `queue` (0016).
    render_message_id: str | None = None
    retry_at: datetime | None = None
    cancel_requested_at: datetime | None = None
    replayed_as: int | None = None
    # The public id of the job `replayed_as` names: filled by the API's reads only
    # (crawler/db/jobs_async.py), None elsewhere.
    replayed_as_public_id: UUID | None = None
    # Accepted by an operator as the gate's new baseline (migration 0010).
    accepted_at: datetime | None = None
    created_at: datetime
    started_at: datetime | None = None  # the first attempt's start
    heartbeat_at: datetime | None = None
    finished_at: datetime | None = None
    updated_at: datetime | None = None
    # The current (or last) attempt's start (migration 0011); /metrics times attempts by it.
    attempt_started_at: datetime | None = None


TokenRole = Literal["dealer", "operator"]


class ApiToken(BaseModel):
    """An API bearer token's record (never the token itself: only its hash is stored)."""

    id: int
    prefix: str
    role: TokenRole
    dealership_id: int | None = None
    dealership_slug: str | None = None
    label: str | None = None
    created_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None
    expires_at: datetime | None = None  # None: never expires

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now
