"""A dealer's view of a job's error: our database's and queue's addresses are named, not
shown (pure logic; the API test in test_operations.py covers the wiring)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from jobs.api import redact


def _settings(monkeypatch, database_url, redis_url, data_dir="/srv/forecourt/data"):
    monkeypatch.setattr(redact, "get_settings", lambda: SimpleNamespace(
        database_url=database_url, redis_url=redis_url, data_dir=Path(data_dir)))


def test_addresses_of_the_database_and_queue_are_named(monkeypatch):
    _settings(monkeypatch, "postgresql://app:pw@db.internal:6432/fc", "redis://10.0.4.7/0")
    hide = redact.hide_infrastructure
    assert hide('connection to server at "db.internal", port 6432 failed: refused') == \
        "connection to server at the database failed: refused"
    assert hide("Error 111 connecting to 10.0.4.7:6379. Connection refused.") == \
        "Error 111 connecting to the job queue. Connection refused."
    assert hide("socket /srv/forecourt/data/pg/.s.PGSQL.5432 gone") == \
        "socket <data dir>/pg/.s.PGSQL.5432 gone"
    # the dealer's own site is theirs to see
    assert hide("https://acme.test:8443/inventory answered 503") == \
        "https://acme.test:8443/inventory answered 503"
    assert hide(None) is None


def test_ipv6_hosts_and_an_error_history(monkeypatch):
    _settings(monkeypatch, None, "redis://[fd00::7]:6380/0")
    assert redact.hide_infrastructure("connecting to [fd00::7]:6380 failed") == \
        "connecting to the job queue failed"
    errors = [{"attempt": 1, "error": "Error connecting to [fd00::7]:6380"}, "odd entry"]
    assert redact.hide_in_errors(errors) == [
        {"attempt": 1, "error": "Error connecting to the job queue"}, "odd entry"]
