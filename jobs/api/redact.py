"""What a dealer's token may not see of forecourt's own machinery.

A job's error can quote the infrastructure it failed on: "could not enqueue: ConnectionError:
Error 111 connecting to 10.0.4.7:6379", psycopg's 'connection to server at "10.0.4.9", port
5432 failed', an embedded server's socket under the data directory; and `worker` names a
worker's host and pid. Operators need all of it; a dealer's UI needs to know the job failed
and why in its own terms, not the addresses of our database and queue. So in a dealer's view
the database's and Redis's addresses and the data directory are replaced by what they are,
and the worker is left out. Errors about the dealer's own site or feed are kept as they are.
"""

from __future__ import annotations

from functools import lru_cache
from urllib.parse import urlsplit

from crawler.config import get_settings


@lru_cache(maxsize=8)
def _replacements(database_url: str | None, redis_url: str | None,
                  data_dir: str) -> tuple[tuple[str, str], ...]:
    pairs: list[tuple[str, str]] = []
    for url, name in ((database_url, "the database"), (redis_url, "the job queue")):
        try:
            parts = urlsplit(url or "")
            host, port = parts.hostname, parts.port
        except ValueError:
            continue
        if not host:
            continue
        port = port or (5432 if name == "the database" else 6379)
        for shown in (host, f"[{host}]") if ":" in host else (host,):
            pairs += [(f"{shown}:{port}", name),  # redis-py, most clients
                      (f'"{shown}", port {port}', name)]  # libpq (psycopg)
    pairs.append((data_dir, "<data dir>"))
    return tuple(pairs)


def hide_infrastructure(text: str | None) -> str | None:
    """`text` with our database's and queue's addresses and the data directory replaced."""
    if not text:
        return text
    settings = get_settings()
    for needle, shown in _replacements(settings.database_url, settings.redis_url,
                                       str(settings.data_dir)):
        text = text.replace(needle, shown)
    return text


# Keys of an error history's entries that name our machinery, not the dealer's run: an
# attempt ended as abandoned records the worker (host, pid, thread) it was lost on.
OPERATOR_ONLY_ERROR_KEYS = frozenset({"worker"})


def hide_in_errors(errors: list) -> list:
    """A job's error history (dicts with an `error` text) as a dealer may see it: the texts
    as `hide_infrastructure` shows them, without the worker an entry names."""
    return [_entry(e) if isinstance(e, dict) else e for e in errors]


def _entry(entry: dict) -> dict:
    shown = {k: v for k, v in entry.items() if k not in OPERATOR_ONLY_ERROR_KEYS}
    if isinstance(shown.get("error"), str):
        shown["error"] = hide_infrastructure(shown["error"])
    return shown
