"""Structured logs: JSON lines with job and dealership ids, and no secrets in any format."""

from __future__ import annotations

import io
import json
import logging
import threading

import pytest

from crawler import logging as fc_logging

SECRETS = [
    ("connecting to postgresql://forecourt:hunter2@db.internal:5432/forecourt", "hunter2"),
    ("redis at redis://:r3dispass@cache:6379/0", "r3dispass"),
    ("headers {'Authorization': 'Bearer abcdef123456', 'Accept': '*/*'}", "abcdef123456"),
    ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA=="),
    ("GET https://feeds.example/x.csv?token=tok_9f8e7d6c&page=2", "tok_9f8e7d6c"),
    ('{"password": "pa55word", "user": "x"}', "pa55word"),
    ("api_key=AKIAIOSFODNN7EXAMPLE sent", "AKIAIOSFODNN7EXAMPLE"),
    ("token fct_live_0123456789abcdef accepted", "fct_live_0123456789abcdef"),
    ("Cookie: session=deadbeefcafe", "deadbeefcafe"),
]


@pytest.mark.parametrize("text, secret", SECRETS)
def test_redact_removes_each_kind_of_secret(text, secret):
    out = fc_logging.redact(text)
    assert secret not in out and "***" in out


def test_redact_keeps_ordinary_text():
    text = "stored 12 vehicles for https://dealer.example/inventory?page=2 in 0.4 s"
    assert fc_logging.redact(text) == text


def _logger(fmt: str):
    stream = io.StringIO()
    handler = fc_logging.make_handler(fmt, stream)
    log = logging.getLogger(f"fc-test-{fmt}-{id(stream)}")
    log.handlers = [handler]
    log.propagate = False
    log.setLevel(logging.DEBUG)
    return log, stream


def test_json_lines_carry_bound_ids_per_thread():
    log, stream = _logger("json")

    def work(job_id, dealer_id):
        with fc_logging.bind(job_id=job_id, dealership_id=dealer_id):
            log.info("fetched %s", f"page-{job_id}")

    threads = [threading.Thread(target=work, args=(n, 100 + n)) for n in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.warning("outside any job", extra={"phase": "idle"})
    lines = [json.loads(ln) for ln in stream.getvalue().splitlines()]
    assert len(lines) == 6
    for line in lines[:5]:
        n = line["job_id"]
        assert line["dealership_id"] == 100 + n and line["msg"] == f"fetched page-{n}"
        assert line["level"] == "INFO" and line["ts"].endswith("+00:00")
    assert "job_id" not in lines[5] and lines[5]["phase"] == "idle"


def test_json_lines_leave_out_uvicorns_colour_copy_of_the_message():
    """`forecourt api` logged "color_message": "Uvicorn running on \\u001b[1m%s://..." beside
    every start-up line: uvicorn's copy of the format for its own coloured console, with
    terminal escapes and unfilled placeholders, in a JSON log."""
    log, stream = _logger("json")
    log.info("Uvicorn running on %s://%s:%d", "http", "127.0.0.1", 8000,
             extra={"color_message": "Uvicorn running on \x1b[1m%s://%s:%d\x1b[0m"})
    line = json.loads(stream.getvalue())
    assert line["msg"] == "Uvicorn running on http://127.0.0.1:8000"
    assert "color_message" not in line and "\x1b" not in stream.getvalue()


def test_secrets_in_messages_args_and_tracebacks_never_reach_either_format():
    for fmt in ("json", "text"):
        log, stream = _logger(fmt)
        with fc_logging.bind(job_id=1):
            log.info("db %s", "postgresql://u:topsecret1@h/db")
            try:
                raise RuntimeError("auth failed for Authorization: Bearer topsecret2xyz")
            except RuntimeError:
                log.exception("request failed with token=topsecret3")
        out = stream.getvalue()
        assert "topsecret" not in out, out
        assert "RuntimeError" in out and "job_id" in out


def test_configure_replaces_its_own_handler_and_sets_static_ids():
    stream = io.StringIO()
    root = logging.getLogger()
    before = list(root.handlers)
    level = root.level
    try:
        fc_logging.configure("json", "INFO", stream=io.StringIO())
        fc_logging.configure("json", "INFO", stream=stream, static={"job_id": 42})
        assert sum(getattr(h, "_forecourt", False) for h in root.handlers) == 1
        logging.getLogger("scrapy.core.engine").info("Spider opened")
        line = json.loads(stream.getvalue().splitlines()[-1])
        assert line["job_id"] == 42 and line["logger"] == "scrapy.core.engine"
    finally:
        for h in [h for h in root.handlers if getattr(h, "_forecourt", False)]:
            root.removeHandler(h)
        root.handlers[:] = before
        root.setLevel(level)
        fc_logging._static.clear()
