"""SQL for API bearer tokens, and the token format.

A token is `fct_<prefix>_<secret>`: the prefix finds the row, the SHA-256 of the whole token
is what is stored and compared (in constant time). The secret is 256 random bits, so a fast
hash is enough: there is nothing to brute-force the way a password can be.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

import psycopg

from crawler.errors import InvalidInput, NotFound
from crawler.models import ApiToken

_SELECT = """
    SELECT t.id, t.prefix, t.role, t.dealership_id, d.slug AS dealership_slug, t.label,
           t.created_at, t.last_used_at, t.revoked_at, t.expires_at
      FROM api_tokens t LEFT JOIN dealerships d ON d.id = t.dealership_id
"""


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def new_token() -> tuple[str, str]:
    """(prefix, token) for a fresh random token."""
    prefix = secrets.token_hex(6)
    return prefix, f"fct_{prefix}_{secrets.token_urlsafe(32)}"


def prefix_of(token: str) -> str | None:
    """The lookup prefix of a well-formed token, else None."""
    parts = token.split("_")
    if len(parts) < 3 or parts[0] != "fct" or len(parts[1]) != 12:
        return None
    return parts[1]


def matches(token: str, secret_hash: bytes) -> bool:
    return hmac.compare_digest(hash_token(token), bytes(secret_hash))


def create(conn: psycopg.Connection, role: str, dealership_id: int | None = None,
           label: str | None = None, expires_in: timedelta | None = None
           ) -> tuple[ApiToken, str]:
    """Store a new token, expiring `expires_in` from now (None: never); returns its record
    and the token, which is never shown again."""
    if (role == "dealer") != (dealership_id is not None):
        raise InvalidInput("a dealer token needs a dealership, an operator token none",
                           hint="use --dealer <slug> or --operator")
    prefix, token = new_token()
    row = conn.execute(
        "INSERT INTO api_tokens (prefix, secret_hash, role, dealership_id, label, expires_at)"
        " VALUES (%s, %s, %s, %s, %s, now() + %s) RETURNING id",
        (prefix, hash_token(token), role, dealership_id, label, expires_in),
    ).fetchone()
    return get(conn, row["id"]), token


def get(conn: psycopg.Connection, token_id: int) -> ApiToken:
    row = conn.execute(_SELECT + " WHERE t.id = %s", (token_id,)).fetchone()
    if row is None:
        raise NotFound(f"no token {token_id}", hint="see `forecourt tokens list`")
    return ApiToken.model_validate(row)


_LIVE = " t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > now())"


def list_all(conn: psycopg.Connection, include_revoked: bool = True) -> list[ApiToken]:
    """Every token, or (`include_revoked` false) only those that still work: neither
    revoked nor expired."""
    rows = conn.execute(
        _SELECT + " WHERE %s OR (" + _LIVE + ") ORDER BY t.id", (include_revoked,)
    ).fetchall()
    return [ApiToken.model_validate(r) for r in rows]


def revoke(conn: psycopg.Connection, token_id: int) -> ApiToken:
    """Revoke a token (idempotent: the first revocation time is kept)."""
    row = conn.execute(
        "UPDATE api_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE id = %s"
        " RETURNING id", (token_id,),
    ).fetchone()
    if row is None:
        raise NotFound(f"no token {token_id}", hint="see `forecourt tokens list`")
    return get(conn, token_id)


# Async reads and writes for the API's hot path.

async def alookup(conn: psycopg.AsyncConnection, token: str) -> tuple[ApiToken, bytes] | None:
    """The live token record for a presented token and its stored hash, or None (unknown,
    revoked, expired, malformed, wrong secret)."""
    prefix = prefix_of(token)
    if prefix is None:
        return None
    cur = await conn.execute(
        _SELECT.replace("SELECT t.id", "SELECT t.secret_hash, t.id", 1)
        + " WHERE t.prefix = %s AND" + _LIVE, (prefix,))
    row = await cur.fetchone()
    if row is None or not matches(token, row["secret_hash"]):
        return None
    return ApiToken.model_validate(row), bytes(row["secret_hash"])


async def atouch(conn: psycopg.AsyncConnection, token_id: int) -> None:
    """Record that a token was used (callers throttle this to about once a minute)."""
    await conn.execute("UPDATE api_tokens SET last_used_at = now() WHERE id = %s", (token_id,))
