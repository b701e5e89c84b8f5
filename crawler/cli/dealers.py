"""`forecourt dealers`: add, change, show, list and remove dealerships."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import typer
from rich.table import Table

from crawler.cli.common import console, database, say
from crawler.cli.render import interval_text, job_progress
from crawler.db import dealers as dealers_db
from crawler.errors import ForecourtError, InvalidInput
from crawler.logging import redact
from crawler.models import Dealership
from crawler.urls import check_http_url

_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
# What the scheduler runs for a dealer (settings.schedule_kind; jobs.scheduler.job_kind).
# No "both": vehicles are one row per dealer and VIN, and a healthy complete run removes
# every active vehicle of the dealer it did not see, so a crawl and a feed of one dealer
# would remove each other's cars (and one dealer has one active job at a time).
SCHEDULE_KINDS = ("crawl", "feed")


def _detected_platform(slug: str, url: str,
                       otherwise: str = "stored as generic") -> tuple[bool, str | None]:
    """(True, the platform detected from the dealer's page: None for the generic spider),
    or (False, None) when the page cannot be fetched or is a bot challenge; `otherwise`
    says what happens then."""
    from crawler.cli.detect import fetch_page
    from spiders.detect import detect, stored_platform

    fix = f"set it with `forecourt dealers set {slug} --platform P`"
    try:
        text, final_url = fetch_page(url)
    except ForecourtError as exc:
        say(f"platform not detected ({exc}): {otherwise}; {fix}")
        return False, None
    found = detect(text, final_url)
    if found.page_kind == "blocked":
        say(f"platform not detected (the page is a bot challenge): {otherwise}; "
            f"{fix}")
        return False, None
    rendered = ", pages rendered in the headless browser" if found.renders else ""
    say(f"detected platform: {found.platform or 'unknown'}; crawl path: "
        f"{found.path} ({found.spider} spider{rendered})")
    return True, stored_platform(found)


def _feed_source(feed: str) -> str:
    """A feed as stored: an http(s) URL as given (checked like a website URL, since it is
    fetched too), or an existing local file as an absolute path (a relative one would depend
    on the working directory of whichever worker ingests it)."""
    if "://" in feed:
        check_http_url(feed)
        return feed
    path = Path(feed).expanduser()
    if not path.is_file():
        raise InvalidInput(f"no feed file {feed!r}",
                           hint="give an existing feed file or an http(s) URL")
    return str(path.resolve())


def _checked(url: str | None, platform: str | None, feed: str | None,
             feed_format: str | None) -> dict[str, str]:
    """The given fields, each checked as `dealers add` and `dealers set` both require."""
    fields = {}
    if url is not None:
        check_http_url(url)
        fields["website_url"] = url
    if platform is not None:
        from spiders.registry import check_platform

        fields["platform"] = check_platform(platform)
    if feed is not None:
        fields["feed_url"] = _feed_source(feed)
    if feed_format is not None:
        from ingest.readers import FORMATS

        if feed_format.lower() not in FORMATS:
            raise InvalidInput(f"unknown feed format {feed_format!r}",
                               hint="use one of: " + ", ".join(FORMATS))
        fields["feed_format"] = feed_format.lower()
    return fields


def _schedule_kind(kind: str | None) -> str | None:
    if kind is not None and kind.lower() not in SCHEDULE_KINDS:
        raise InvalidInput(f"unknown scheduled job kind {kind!r}",
                           hint="use --schedule crawl or --schedule feed; the times are set "
                                "with `forecourt schedule set SLUG CRON`")
    return kind.lower() if kind is not None else None


def _check_schedule_kind(slug: str, kind: str, website_url: str | None,
                         feed_url: str | None, adding: bool = False) -> None:
    """A scheduled crawl needs a website, a scheduled feed run a feed."""
    needs = {"crawl": ("website to crawl", website_url, "--url URL", "feed"),
             "feed": ("feed to ingest", feed_url, "--feed F", "crawl")}
    what, have, option, other = needs[kind]
    if have:
        return
    give = f"add {option} too" if adding else \
        f"give it one with `forecourt dealers set {slug} {option}`"
    raise InvalidInput(f"dealership {slug!r} has no {what} on its schedule",
                       hint=f"{give}, or use --schedule {other}")


def _mapping(path: str | None, clear: bool) -> dict | None:
    """The mapping file to store, checked as `forecourt ingest --mapping` checks it;
    {} to clear the stored one (--no-mapping); None to leave it."""
    if path is not None and clear:
        raise InvalidInput("--mapping and --no-mapping contradict each other",
                           hint="give one of them")
    if clear:
        return {}
    if path is None:
        return None
    from ingest import mapping as mapping_mod

    spec = mapping_mod.load_override(path)
    try:  # a TOML date in [defaults] parses but cannot be stored as JSON
        json.dumps(spec)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"mapping file {Path(path).name} holds a value JSON cannot store "
                           f"({exc})", hint="give defaults as text or numbers") from exc
    return spec


# what `dealers set` changed, named as `dealers show` labels it (settings holds what the
# schedule runs)
_LABELS = {"website_url": "website", "feed_url": "feed", "feed_format": "feed format",
           "feed_mapping": "feed mapping", "settings": "scheduled runs"}


def _print_dealer(dealer: Dealership) -> None:
    schedule = (dealer.schedule_cron or (f"every {interval_text(dealer.schedule_interval_s)}"
                                        if dealer.schedule_interval_s else None))
    table = Table(title=f"dealership {dealer.slug}", show_header=False)
    table.add_column("field")
    table.add_column("value")
    for label, value in (
            ("id", str(dealer.id)), ("name", dealer.name),
            ("website", redact(dealer.website_url or "-")),
            ("platform", dealer.platform or ("- (generic spider)" if dealer.website_url
                                             else "- (no website)")),
            ("feed", redact(dealer.feed_url or "-")),  # a feed URL may carry credentials
            ("feed format", dealer.feed_format or "- (from the feed's name)"),
            ("feed mapping", _mapping_text(dealer.feed_mapping)),
            ("schedule", f"{schedule} ({dealer.schedule_tz})" if schedule else "-"),
            ("scheduled runs", _scheduled_runs(dealer)),
            ("paused", "yes" if dealer.paused else "no")):
        table.add_row(label, value)
    console.print(table)


def _mapping_text(spec: dict | None) -> str:
    if not spec:
        return "- (detected from the feed's columns)"
    from ingest import mapping as mapping_mod

    try:
        return mapping_mod.summary(spec)
    except InvalidInput as exc:  # stored by hand or by an older version
        return f"stored, but not valid: {exc}"


def _scheduled_runs(dealer: Dealership) -> str:
    from jobs.scheduler import job_kind

    kind = job_kind(dealer)
    if dealer.settings.get("schedule_kind"):
        return f"{kind} (set with --schedule)"
    return f"{kind} (default: " + ("it has a website)" if kind == "crawl" else "no website)")


def register(app: typer.Typer) -> None:
    dealers_app = typer.Typer(help="Dealerships: add, set, show, list, remove.",
                              no_args_is_help=True)
    app.add_typer(dealers_app, name="dealers")

    @dealers_app.command("add")
    def add(
        slug: str = typer.Argument(..., help="Short unique name, e.g. maple-ridge-motors."),
        name: str = typer.Option(..., "--name", help="The dealership's name."),
        url: str | None = typer.Option(None, "--url", help="Website to crawl."),
        platform: str | None = typer.Option(None, "--platform",
                                            help="Website platform (detected when omitted)."),
        feed_url: str | None = typer.Option(None, "--feed", help="Inventory feed path or URL."),
        feed_format: str | None = typer.Option(
            None, "--feed-format", help="Feed format (default: from the feed's name)."),
        mapping: str | None = typer.Option(
            None, "--mapping", help="Column mapping file (.json or .toml) stored for its "
            "feed, as `forecourt ingest --mapping` takes it."),
        schedule: str | None = typer.Option(
            None, "--schedule", help="What its schedule runs: crawl or feed (default: crawl "
            "when it has a website, else feed)."),
    ) -> None:
        """Add a dealership."""
        if not _SLUG.match(slug):
            raise InvalidInput(f"slug {slug!r} is not valid",
                               hint="use lower-case letters, digits and dashes, e.g. acme-motors")
        if not url and not feed_url:
            raise InvalidInput("a dealer needs --url or --feed", hint="give its website or feed")
        fields = _checked(url, platform, feed_url, feed_format)
        kind = _schedule_kind(schedule)
        if kind is not None:
            _check_schedule_kind(slug, kind, url, feed_url, adding=True)
            fields["settings"] = {"schedule_kind": kind}
        if (spec := _mapping(mapping, False)) is not None:
            fields["feed_mapping"] = spec
        with database() as conn:
            dealers_db.check_free(conn, slug)  # refused before its site is fetched
            if url and not platform:
                fields["platform"] = _detected_platform(slug, url)[1]
            dealer = dealers_db.create(conn, slug=slug, name=name, **fields)
        say(f"added dealership {dealer.slug} (id {dealer.id})")

    @dealers_app.command("set")
    def set_cmd(
        slug: str = typer.Argument(..., help="The dealership's slug."),
        name: str | None = typer.Option(None, "--name", help="The dealership's name."),
        url: str | None = typer.Option(None, "--url", help="Website to crawl."),
        platform: str | None = typer.Option(None, "--platform", help="Website platform."),
        feed_url: str | None = typer.Option(None, "--feed", help="Inventory feed path or URL."),
        feed_format: str | None = typer.Option(None, "--feed-format", help="Feed format."),
        mapping: str | None = typer.Option(
            None, "--mapping", help="Column mapping file (.json or .toml) stored for its "
            "feed; its next feed run processes the feed again."),
        no_mapping: bool = typer.Option(
            False, "--no-mapping", help="Forget the stored mapping (detect it again)."),
        schedule: str | None = typer.Option(
            None, "--schedule", help="What its schedule runs: crawl or feed."),
    ) -> None:
        """Change a dealership: only the fields given; then print it."""
        fields = _checked(url, platform, feed_url, feed_format)
        if name is not None:
            fields["name"] = name
        spec = _mapping(mapping, no_mapping)
        if spec is not None:
            fields["feed_mapping"] = spec or None
        kind = _schedule_kind(schedule)
        if not fields and kind is None:
            raise InvalidInput("nothing to change",
                               hint="give --name, --url, --platform, --feed, --feed-format, "
                                    "--mapping, --no-mapping or --schedule")
        with database() as conn:
            current = dealers_db.get(conn, slug)
            if kind is not None:
                _check_schedule_kind(slug, kind, fields.get("website_url", current.website_url),
                                     fields.get("feed_url", current.feed_url))
                fields["settings"] = {**current.settings, "schedule_kind": kind}
            if url and not platform:  # a new website is often a new platform: detect it
                found, detected = _detected_platform(
                    slug, url, f"platform kept ({current.platform or 'generic'})")
                if found and detected != current.platform:
                    fields["platform"] = detected
            dealer = dealers_db.update(conn, current.id, **fields)
        changed = sorted(_LABELS.get(f, f) for f in fields)
        say(f"updated dealership {dealer.slug}: {', '.join(changed)}")
        _print_dealer(dealer)

    @dealers_app.command("show")
    def show(slug: str = typer.Argument(..., help="The dealership's slug.")) -> None:
        """Show a dealership's settings."""
        with database() as conn:
            dealer = dealers_db.get(conn, slug)
        _print_dealer(dealer)

    @dealers_app.command("remove")
    def remove_cmd(
        slug: str = typer.Argument(..., help="The dealership's slug."),
        yes: bool = typer.Option(False, "--yes", "-y", help="Remove without asking."),
    ) -> None:
        """Remove a dealership and everything only its own (vehicles, events, jobs, rejects,
        schedule, feed validators, dealer tokens); refused while it has a queued or running
        job. Run again to finish an interrupted removal."""
        from crawler import offboard
        from crawler.db import jobs as jobs_db

        with database() as conn:
            dealer = dealers_db.get(conn, slug)
            job = jobs_db.active(conn, dealer.id)
            if job is not None:
                raise offboard.refusal(dealer, job.id, job.state)
            if not yes:
                if not sys.stdin.isatty():
                    raise InvalidInput(f"removing dealership {slug!r} deletes its data for "
                                       "good and needs confirmation",
                                       hint=f"pass --yes: `forecourt dealers remove {slug} "
                                            "--yes`")
                if not typer.confirm(f"Remove dealership {slug} ({dealer.name}, id "
                                     f"{dealer.id}) with all its vehicles, events, jobs, "
                                     "rejects and API tokens?", default=False):
                    say("nothing removed")
                    raise typer.Exit(1)
            with job_progress() as progress:  # a big dealer takes thousands of batches
                task = progress.add_task(f"remove {slug}", total=None, status="")
                done: dict[str, int] = {}

                def on_batch(what: str, n: int) -> None:
                    done[what] = done.get(what, 0) + n
                    progress.update(task, status="  ".join(f"{k} {v:,}"
                                                           for k, v in done.items()))

                counts = offboard.remove(conn, dealer, on_batch=on_batch)
                progress.update(task, total=1, completed=1)
        table = Table(title=f"removed dealership {slug}")
        table.add_column("what")
        table.add_column("removed", justify="right")
        for what, n in counts.items():
            table.add_row(what, f"{n:,}")
        console.print(table)

    @dealers_app.command("list")
    def list_cmd(
        stale: bool = typer.Option(
            False, "--stale", help="Only the scheduled dealerships whose inventory is stale "
            "(no successful run by two schedule periods, plus the time a run takes and "
            "FORECOURT_STALE_GRACE_S, after their last success or their resume or schedule "
            "change), with how long and their last error."),
    ) -> None:
        """List dealerships with their active vehicles, last job and whether their inventory
        is current."""
        from jobs import freshness

        with database() as conn:
            judged = {r["slug"]: r for r in freshness.judge(dealers_db.freshness(conn))}
            if stale:
                _print_stale(judged)
                return
            rows = dealers_db.list_all(conn)
        table = Table(title=f"{len(rows)} dealership(s)")
        for col in ("slug", "name", "platform", "website / feed", "active", "last job",
                    "inventory", "paused"):
            table.add_column(col)
        for r in rows:
            table.add_row(r["slug"], r["name"],
                          r["platform"] or ("generic" if r["website_url"] else "-"),
                          redact(r["website_url"] or r["feed_url"] or "-"),
                          str(r["active_vehicles"]),
                          r["last_job_state"] or "-", _inventory_text(judged.get(r["slug"])),
                          "yes" if r["paused"] else "no")
        console.print(table)


def _duration(seconds: float) -> str:
    """3 min, 5 h 12 min, 3 d 4 h."""
    minutes = int(max(seconds, 0) // 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min"
    return f"{hours // 24} d {hours % 24} h"


def _inventory_text(row: dict | None) -> str:
    """current / stale for ... / rescheduled ... / never succeeded yet / - (paused or
    unscheduled: no promise)."""
    if row is None:
        return "-"
    if row["stale"]:
        return f"stale for {_duration(row['overdue_s'])}"
    if row["rescheduled"]:  # old inventory; its deadline counts from then
        return f"{_on_schedule(row)}, last success {_duration(row['success_age_s'])} ago"
    return "current" if row["last_success_at"] else "never succeeded yet"


def _on_schedule(row: dict) -> str:
    """added 3 d 0 h ago / rescheduled 5 h 0 min ago (resumed, or its schedule set):
    whence a dealer's deadline counts."""
    went, at = ("rescheduled", row["scheduled_since"]) if row["scheduled_since"] else \
        ("added", row["created_at"])
    return f"{went} {_duration((row['now'] - at).total_seconds())} ago"


def _print_stale(judged: dict[str, dict]) -> None:
    stale = sorted((r for r in judged.values() if r["stale"]),
                   key=lambda r: -(r["overdue_s"] or 0))
    table = Table(title=f"{len(stale)} stale of {len(judged)} scheduled dealership(s)")
    for col in ("slug", "last success", "stale for", "last run", "last error"):
        table.add_column(col)
    for r in stale:
        success = f"{_duration(r['success_age_s'])} ago (job {r['success_job_id']})" \
            if r["last_success_at"] else f"never ({_on_schedule(r)})"
        last_run = f"{r['last_run_state']} (job {r['last_run_id']})" if r["last_run_id"] \
            else "none finished"
        error = "-"
        if r["last_error"]:
            error = redact(r["last_error"].splitlines()[0])
            error = (error[:117] + "...") if len(error) > 120 else error
            error += f" (job {r['error_job_id']})"
        table.add_row(r["slug"], success, _duration(r["overdue_s"]), last_run, error)
    console.print(table)
