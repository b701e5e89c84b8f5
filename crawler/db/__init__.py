"""Data access: connections and migrations. Table-specific SQL lives in the sibling modules."""

from __future__ import annotations

from crawler.db.connect import connect, database_url, redis_url
from crawler.db.migrate import migrate

__all__ = ["connect", "database_url", "redis_url", "migrate"]
