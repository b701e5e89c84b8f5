"""One error hierarchy for forecourt. Each class says when it is raised.

Errors are translated only at the edges: a reject in pipelines, a retry or dead letter in
actors, one readable line in the CLI, problem+json in the API.
"""


def one_line(exc: BaseException) -> str:
    """An unexpected error as one line: its type and the first line of its message."""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}".rstrip(": ")


class ForecourtError(Exception):
    """Base of every error forecourt raises on purpose. `hint` tells the user the fix.
    `public`: the message as an HTTP API client reads it, where it differs: jobs named by
    their public ids, never by their numbers (one sequence over every dealership)."""

    hint: str = ""
    public: str | None = None

    def __init__(self, message: str, hint: str | None = None, public: str | None = None):
        super().__init__(message)
        if hint is not None:
            self.hint = hint
        if public is not None:
            self.public = public


class Interrupted(ForecourtError):
    """Raised when Ctrl-C stops a command whose work goes on without it (following a job a
    worker runs): its line says so, and the command exits 130."""

    exit_code = 130


class ConfigError(ForecourtError):
    """Raised when configuration or the environment cannot work (bad URL, missing server)."""


class NoChromium(ConfigError):
    """Raised when a page must be rendered and this machine has no Chromium it may execute
    (FORECOURT_CHROMIUM_PATH, /usr/bin/chromium, `chromium` on PATH). Another worker of the
    fleet may have one (jobs/failures.py hands the crawl on to it)."""


class MigrationError(ForecourtError):
    """Raised when a command meets a database with schema migrations pending (only `forecourt
    db migrate` applies them to a live schema), or when a migration gave up waiting for a
    lock another transaction holds."""


class NotFound(ForecourtError):
    """Raised when a named dealership, job or vehicle does not exist."""


class AlreadyExists(ForecourtError):
    """Raised when creating something whose unique name is taken."""


class InvalidInput(ForecourtError):
    """Raised when a user-supplied value (slug, URL, cron, file) is malformed."""


class Busy(ForecourtError):
    """Raised when an operation must wait for a dealership's queued or running job."""


class TakenOver(ForecourtError):
    """Raised when a run would write a batch as an attempt of its job that is no longer the
    running one: another worker took the job over (its worker looked dead: stalled, cut
    off), or the job ended meanwhile. Nothing of the batch is written; the run stops and
    settles nothing (the job is its current attempt's)."""

    def __init__(self, job_id: int, attempt: int, attempts: int | None, state: str | None):
        if attempts is None:
            message = f"job {job_id} attempt {attempt} is gone (the job no longer exists)"
        elif attempts != attempt:
            message = f"job {job_id} attempt {attempt} was taken over by attempt {attempts}"
        else:
            message = f"job {job_id} attempt {attempt} is no longer running (the job is {state})"
        super().__init__(message)
        self.job_id, self.attempt, self.attempts, self.state = job_id, attempt, attempts, state


class Transient(ForecourtError):
    """Raised for failures worth retrying: network errors, 5xx, timeouts, lost connections."""


class RenderTimeout(Transient):
    """Raised when a page rendered in headless Chromium does not finish within
    render_timeout_s of opening (its scripts hang the browser); the page was closed. Not an
    OSError, so Scrapy does not retry it within the crawl: the job's retry comes later."""

    hint = "a slow but working site may need a higher FORECOURT_RENDER_TIMEOUT_S"


class Permanent(ForecourtError):
    """Raised for failures a retry cannot fix: a site that is gone, a feed that does not parse."""


class Blocked(Permanent):
    """Raised when a site answers with a captcha or bot challenge instead of inventory."""


class UnsafeURL(Permanent):
    """Raised when a URL, or a redirect it leads to, points at a forbidden address."""


def describe(exc: BaseException) -> str:
    """One line for a job's error: the message, and the fix where forecourt knows it."""
    hint = getattr(exc, "hint", "")
    return f"{exc} ({hint})" if hint else str(exc)
