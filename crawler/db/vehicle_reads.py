"""SQL reading vehicles and their events: a dealer's inventory and history, a VIN's status
and the dealers that list it, a dealer's active count."""

from __future__ import annotations

from typing import Any

import psycopg


def active_count(conn: psycopg.Connection, dealership_id: int) -> int:
    return conn.execute(
        "SELECT count(*) AS n FROM vehicles WHERE dealership_id = %s AND status = 'active'",
        (dealership_id,),
    ).fetchone()["n"]


def list_for(conn: psycopg.Connection, dealership_id: int, status: str | None = "active",
             limit: int = 100) -> list[dict[str, Any]]:
    return conn.execute(
        """
        SELECT *, floor(extract(epoch FROM coalesce(removed_at, now()) - first_seen)
                        / 86400)::int AS days_on_lot
          FROM vehicles
         WHERE dealership_id = %(d)s AND (%(s)s::text IS NULL OR status = %(s)s)
         ORDER BY make, model, year, vin LIMIT %(n)s
        """,
        {"d": dealership_id, "s": status, "n": limit},
    ).fetchall()


def events_for(conn: psycopg.Connection, dealership_id: int, vin: str | None = None,
               limit: int = 200) -> list[dict[str, Any]]:
    return conn.execute(
        """
        SELECT * FROM vehicle_events
         WHERE dealership_id = %(d)s AND (%(v)s::text IS NULL OR vin = %(v)s)
         ORDER BY id DESC LIMIT %(n)s
        """,
        {"d": dealership_id, "v": vin, "n": limit},
    ).fetchall()


def vin_status(conn: psycopg.Connection, dealership_id: int, vin: str) -> str | None:
    """The dealership's vehicle with this VIN: its status (active, removed), or None."""
    row = conn.execute("SELECT status FROM vehicles WHERE dealership_id = %s AND vin = %s",
                       (dealership_id, vin)).fetchone()
    return row["status"] if row else None


def dealers_with_vin(conn: psycopg.Connection, vin: str, limit: int = 3) -> list[str]:
    """Slugs of (up to `limit`) dealerships that have a vehicle with this VIN, by slug."""
    rows = conn.execute(
        """
        SELECT d.slug FROM vehicles v JOIN dealerships d ON d.id = v.dealership_id
         WHERE v.vin = %s ORDER BY d.slug LIMIT %s
        """, (vin, limit)).fetchall()
    return [r["slug"] for r in rows]
