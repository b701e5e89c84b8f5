"""Structured logs: one JSON object per line, with the job and dealership, and no secrets.

Everything forecourt runs logs through the standard `logging` module (Scrapy does too), so
one handler serves the crawl child, the workers and the API:

    from crawler import logging as fc_logging
    fc_logging.configure()                      # log_format from config: json | text
    with fc_logging.bind(job_id=7, dealership_id=3):
        logger.info("fetched %s", url)          # -> {"job_id": 7, "dealership_id": 3, ...}

`bind` uses context variables, so each thread or asyncio task carries its own ids. Whatever
the format, `redact` is applied to the final message and any traceback: passwords in URLs
(postgresql://user:***@host), Authorization headers, bearer tokens and token/password/key
parameters never reach a log.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "forecourt_log_context", default=None)
# Set by configure(static=...): fields every record of this process carries (a crawl child
# logs for one job, whatever thread Scrapy logs from).
_static: dict[str, Any] = {}

REDACTED = "***"
_SECRET_WORDS = (r"password|passwd|pwd|secret|token|access_token|refresh_token|auth_token|"
                 r"api_key|apikey|api-key|client_secret|private_key|sessionid|signature|"
                 r"x-amz-signature|x-amz-security-token")
_WORDS = tuple(_SECRET_WORDS.split("|"))
# (pattern, replacement, substrings of the lower-cased text of which one must be present for
# the pattern to have anything to do): plain substring tests first, regexes only when needed.
_PATTERNS: list[tuple[re.Pattern[str], str, tuple[str, ...]]] = [
    # scheme://user:password@host -> scheme://user:***@host (postgresql, redis, amqp, http...)
    (re.compile(r"(?P<pre>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s'\"]*:)[^@\s'\"]+(?=@)"),
     rf"\g<pre>{REDACTED}", ("@",)),
    # Authorization / Proxy-Authorization / Cookie headers, as text or in a dict repr
    (re.compile(r"(?i)(?P<pre>['\"]?(?:proxy-)?authorization['\"]?\s*[:=]\s*['\"]?)"
                r"[^'\"\r\n,}]+"), rf"\g<pre>{REDACTED}", ("authoriz",)),
    (re.compile(r"(?i)(?P<pre>['\"]?(?:set-)?cookie['\"]?\s*[:=]\s*['\"]?)[^'\"\r\n}]+"),
     rf"\g<pre>{REDACTED}", ("cookie",)),
    # Bearer / Basic credentials wherever they appear
    (re.compile(r"(?i)\b(?P<pre>bearer|basic)\s+[A-Za-z0-9._~+/=-]{6,}"),
     rf"\g<pre> {REDACTED}", ("bearer", "basic")),
    # key=value and "key": "value" for secret-sounding keys (query strings, DSNs, JSON)
    (re.compile(rf"(?i)(?P<pre>\b(?:{_SECRET_WORDS})\b['\"]?\s*[=:]\s*['\"]?)"
                r"(?!\*\*\*)[^\s&'\",;}]+"), rf"\g<pre>{REDACTED}", _WORDS),
    # forecourt API tokens, whatever surrounds them
    (re.compile(r"\bfct_[A-Za-z0-9_-]{8,}"), f"fct_{REDACTED}", ("fct_",)),
]


def redact(text: str) -> str:
    """`text` with every credential the patterns know replaced by ***."""
    if not text:
        return text
    low = text.lower()
    for pattern, repl, triggers in _PATTERNS:
        if any(t in low for t in triggers):
            text = pattern.sub(repl, text)
    return text


@contextmanager
def bind(**fields: Any) -> Iterator[None]:
    """Add fields (job_id, dealership_id, ...) to every record logged inside the block."""
    token = _context.set({**(_context.get() or {}), **{k: v for k, v in fields.items()
                                                       if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def current_fields() -> dict[str, Any]:
    return {**_static, **(_context.get() or {})}


class ContextFilter(logging.Filter):
    """Puts the bound fields on each record as attributes (job_id, dealership_id...)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in current_fields().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


class RedactingFilter(logging.Filter):
    """Renders the message and redacts it, so no handler ever sees a secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not lose the record
            message = f"{record.msg!r} {record.args!r}"
        record.msg = redact(message)
        record.args = None
        record._fc_redacted = True
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


# Scrapy's crawler extra is an object repr; uvicorn's color_message, the format again with
# terminal escapes for its own coloured console
_RESERVED = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message", "asctime", "taskName", "crawler", "color_message"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, bound fields and extras, exc."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage() if getattr(record, "_fc_redacted", False)
            else redact(record.getMessage()),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_") and key not in doc:
                doc[key] = value if isinstance(value, (int, float, bool, type(None))) \
                    else redact(str(value))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            doc["exc"] = redact(record.exc_text)
        return json.dumps(doc, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """The classic one-line format, with the bound ids when there are any."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s [%(name)s] %(levelname)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        if not getattr(record, "_fc_redacted", False):
            line = redact(line)
        ids = " ".join(f"{k}={v}" for k, v in current_fields().items())
        return f"{line} [{ids}]" if ids else line


def make_handler(fmt: str | None = None, stream: Any = None) -> logging.Handler:
    """A stream handler with the forecourt formatter and both filters."""
    from crawler.config import get_settings

    fmt = (fmt or get_settings().log_format).lower()
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(ContextFilter())
    handler.addFilter(RedactingFilter())
    handler._forecourt = True  # type: ignore[attr-defined]
    return handler


def configure(fmt: str | None = None, level: str | int | None = None, *, stream: Any = None,
              static: dict[str, Any] | None = None, adopt: bool = False) -> logging.Handler:
    """Route the root logger through one forecourt handler (replacing an earlier one).

    `static` fields go on every record of the process (the crawl child's job and dealer).
    `adopt` (a Dramatiq worker process): take over the root handler the host installed,
    writing to its stream (Dramatiq's pipe to the main process, which honours --log-file),
    so each record is written once, formatted and redacted by forecourt.
    """
    from crawler.config import get_settings

    _static.clear()
    _static.update({k: v for k, v in (static or {}).items() if v is not None})
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_forecourt", False)]:
        root.removeHandler(old)
    if adopt:
        for other in list(root.handlers):
            if stream is None and isinstance(other, logging.StreamHandler):
                stream = other.stream
            root.removeHandler(other)
    handler = make_handler(fmt, stream)
    root.addHandler(handler)
    root.setLevel(level or get_settings().log_level)
    return handler
