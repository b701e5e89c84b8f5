"""Unexpected errors at the terminal (a bug, a lost connection): one line naming what broke,
the traceback kept in a file, and a job the command was running settled failed rather than
left `running` (which would refuse every run of its dealer until a reaper found it stale)."""

from __future__ import annotations

import os
import tempfile
import time
import traceback
from pathlib import Path

from crawler.errors import ForecourtError, describe, one_line


def _detail(exc: BaseException) -> str:
    return describe(exc) if isinstance(exc, ForecourtError) else one_line(exc)


def _append_traceback(path: Path, exc: BaseException) -> Path | None:
    """The exception's traceback, redacted, appended to `path`; the path, or None when it
    cannot be written (a read-only data directory: the error line still says what broke)."""
    from crawler.logging import redact

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as log:
            log.write(redact("".join(traceback.format_exception(exc))))
        return path
    except Exception:  # noqa: BLE001
        return None


def job_crashed(conn, job_id: int, what: str, exc: BaseException) -> ForecourtError:
    """Settle a job whose run here raised what its runner does not handle: failed (kind
    `crash`), the error in its history (the run removed nothing: only a run that ends
    settles vehicles), its traceback in the job's log. Returns the one-line error to raise.
    `what`: the job's kind as the line names it ("crawl", "ingest")."""
    from crawler.crawl_runner import log_path
    from crawler.db import connect
    from crawler.db import job_queue as queue_db

    detail = _detail(exc)
    try:
        where = _append_traceback(log_path(job_id), exc)
    except Exception:  # noqa: BLE001 - no settings, no database name: no log
        where = None
    for attempt in (conn, None):  # the run's own connection may be what broke
        try:
            if attempt is not None:
                queue_db.fail_running(attempt, job_id, f"unexpected error: {detail}", "crash")
            else:
                with connect() as fresh:
                    queue_db.fail_running(fresh, job_id, f"unexpected error: {detail}", "crash")
            break
        except Exception:  # noqa: BLE001 - the database is out of reach: the reaper settles it
            continue
    hint = f"see `forecourt jobs show {job_id}`" + (
        f"; the traceback is in {where}" if where else "")
    return ForecourtError(f"{what} job {job_id} failed on an unexpected error: {detail}",
                          hint=hint)


def unexpected(exc: BaseException) -> tuple[str, str]:
    """The error line and hint for an exception no command handled: its traceback goes to
    `<data dir>/logs/crash-<UTC time>-<pid>.log` (the temporary directory when the data
    directory cannot be used)."""
    name = f"crash-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{os.getpid()}.log"
    where = None
    try:
        from crawler.config import get_settings

        where = _append_traceback(get_settings().data_dir / "logs" / name, exc)
    except Exception:  # noqa: BLE001 - unusable settings: the temporary directory
        pass
    if where is None:
        where = _append_traceback(Path(tempfile.gettempdir()) / f"forecourt-{name}", exc)
    hint = (f"the traceback is in {where}" if where else "no traceback could be written")
    return (f"unexpected error: {_detail(exc)}",
            hint + "; please report it with the command that failed")
