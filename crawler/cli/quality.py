"""`forecourt quality`: a run's report and the worst vehicles; `forecourt quality rescore`."""

from __future__ import annotations

import typer
from rich.table import Table
from rich.text import Text

from crawler.cli.common import console, database, price_text, say
from crawler.cli.render import job_progress
from crawler.db import baselines as baselines_db
from crawler.db import dealers as dealers_db
from crawler.db import jobs as jobs_db
from crawler.db import quality as quality_db
from crawler.errors import InvalidInput, NotFound
from crawler.models import FINAL_STATES, Job
from quality.score import RULES_VERSION

_VERDICT = {"healthy": "green", "degraded": "yellow", "failed": "red"}


def _finished_job(conn, dealer_id: int, job_id: int | None, command: str = "quality") -> Job:
    """The dealer's job `job_id`, else its latest finished run (a job that started and
    ended); another dealer's job is refused naming that dealer and the `forecourt <command>`
    that shows it (as `rejects`). A latest run with no report (it failed before a verdict:
    the site or feed unreachable) is refused too, naming the latest run that has one: an
    older report is never passed off as the latest."""
    if job_id is not None:
        job = jobs_db.get(conn, job_id)
        if job.dealership_id != dealer_id:
            mine = dealers_db.get_by_id(conn, dealer_id).slug
            other = dealers_db.get_by_id(conn, job.dealership_id).slug
            raise InvalidInput(f"job {job_id} belongs to dealership {other}, not {mine}",
                               hint=f"see `forecourt {command} {other} --job {job_id}`")
        return job
    runs = [j for j in jobs_db.list_for(conn, dealer_id, limit=50)
            if j.state in FINAL_STATES and j.started_at is not None]
    if not runs:
        raise NotFound("this dealership has no finished run yet",
                       hint="run `forecourt crawl <dealer>` or ingest its feed first")
    latest = runs[0]
    if _reported(latest):
        return latest
    slug = dealers_db.get_by_id(conn, dealer_id).slug
    hint = f"see `forecourt jobs show {latest.id}` for why"
    earlier = next((j for j in runs if _reported(j)), None)
    if earlier is not None:
        hint += (f"; job {earlier.id} is the latest with one: "
                 f"`forecourt {command} {slug} --job {earlier.id}`")
    raise InvalidInput(f"job {latest.id} ({latest.kind}, {latest.state}), {slug}'s latest "
                       "finished run, has no quality report", hint=hint)


def _reported(job: Job) -> bool:
    return job.report is not None or job.verdict is not None


def _report(slug: str, job_id: int | None, worst: int) -> None:
    with database() as conn:
        dealer = dealers_db.get(conn, slug)
        job = _finished_job(conn, dealer.id, job_id)
        vehicles = quality_db.worst_vehicles(conn, dealer.id, None, worst)
        flags = quality_db.flag_counts(conn, dealer.id)
    report = job.report or {}
    verdict = job.verdict or report.get("verdict") or "-"
    head = Table(title=f"{dealer.name}: job {job.id} ({job.kind}, {job.state})",
                 show_header=False)
    head.add_column("what")
    head.add_column("value", overflow="fold")
    head.add_row("verdict", Text(verdict, style=_VERDICT.get(verdict, "white")))
    for reason in report.get("reasons") or ["-"]:
        head.add_row("reason", reason)
    if report.get("settled"):
        head.add_row("settled", report["settled"])
    c = job.counters
    if report.get("settled"):
        usual = (f"judged against the {report.get('baseline_runs', 0)} run(s) at the new "
                 f"level (median {report.get('baseline_count') or '-'})")
    elif report.get("baseline_note"):
        usual = report["baseline_note"]
    else:
        usual = (f"usual {report.get('baseline_count') or '-'} over "
                 f"{report.get('baseline_runs', 0)} healthy run(s)")
    head.add_row("vehicles", f"{c.get('valid', 0)} valid of {c.get('items', 0)} items; "
                 + usual)
    head.add_row("rates", f"rejected {report.get('reject_rate', 0):.1%}, errors "
                 f"{report.get('error_rate', 0):.1%}, blocked {report.get('block_rate', 0):.1%}")
    head.add_row("removed", f"{c.get('removed', 0)} (only a healthy complete run removes)")
    if job.accepted_at is not None:
        by = "the gate (the count settled)" if report.get("settled") else "an operator"
        head.add_row("baseline", f"the gate's baseline from {job.accepted_at:%Y-%m-%d %H:%M}"
                     f", accepted by {by}")
    console.print(head)
    now, usual = report.get("coverage") or {}, report.get("usual_coverage") or {}
    if now:
        cov = Table(title="Field coverage")
        for col in ("field", "this run", "usual"):
            cov.add_column(col, justify="right" if col != "field" else "left")
        for name, share in now.items():
            cov.add_row(name, f"{share:.0%}", f"{usual[name]:.0%}" if name in usual else "-")
        console.print(cov)
    worst_table = Table(title=f"Worst {len(vehicles)} active vehicle(s)")
    for col in ("score", "VIN", "vehicle", "price", "flags"):
        worst_table.add_column(col, overflow="fold")
    for v in vehicles:
        name = " ".join(str(x) for x in (v["year"], v["make"], v["model"], v["trim"]) if x)
        worst_table.add_row(str(v["quality_score"]), v["vin"], name,
                            price_text(v["price"]) if v["price"] is not None else "-",
                            ", ".join(v["quality_flags"]))
    console.print(worst_table)
    if flags:
        say("flags: " + ", ".join(f"{k} {n}" for k, n in flags.items()))


def _accept(slug: str, job_id: int | None) -> None:
    with database() as conn:
        dealer = dealers_db.get(conn, slug)
        job = _finished_job(conn, dealer.id, job_id, command="quality accept")
        if job.accepted_at is not None:
            how = ("settled at a new level by the gate, which removed what it did not see"
                   if (job.report or {}).get("settled") else "accepted")
            raise InvalidInput(f"job {job.id} is already {slug}'s baseline ({how})",
                               hint=f"see `forecourt quality {slug} --job {job.id}`")
        newer = baselines_db.latest_accepted(conn, dealer.id, job.kind)
        if newer is not None and newer.id > job.id:
            raise InvalidInput(
                f"job {job.id} is older than job {newer.id}, {slug}'s {job.kind} baseline "
                "since " + f"{newer.accepted_at:%Y-%m-%d %H:%M}",
                hint="accept a run after it, or see `forecourt quality "
                     f"{slug} --job {newer.id}`")
        accepted = baselines_db.accept(conn, job.id)
    if accepted is None and not job.counters.get("valid"):
        raise InvalidInput(
            f"job {job.id} ({job.kind}, {job.state}) stored no vehicle: an empty run is "
            "never a dealer's new baseline (with a usual count of 0 any later run would "
            "pass the gate and remove the rest)",
            hint=f"fix the {'site or crawl' if job.kind == 'crawl' else 'feed'} and run it "
                 f"again, or `--job ID` for another run; `forecourt dealers remove {slug}` "
                 "offboards a dealer that has closed")
    if accepted is None:
        raise InvalidInput(
            f"job {job.id} ({job.kind}, {job.state}, verdict {job.verdict or '-'}) is not a "
            "complete run the gate judged degraded or failed",
            hint="only such a run can become the baseline; see `forecourt quality "
                 f"{slug} --job {job.id}` for its reasons, or `--job ID` for another run")
    report = accepted.report or {}
    table = Table(title=f"{slug}: job {accepted.id} accepted as the new baseline")
    table.add_column("", style="bold")
    table.add_column("value", overflow="fold")
    table.add_row("run", f"{accepted.kind}, {accepted.state}, verdict {accepted.verdict}")
    table.add_row("its reasons", "; ".join(report.get("reasons") or []) or "-")
    table.add_row("vehicles", f"{accepted.counters.get('valid', 0)} (usual before: "
                  f"{report.get('baseline_count') or '-'})")
    table.add_row("from now on", f"{accepted.kind} runs are judged against this run and the "
                  "healthy ones after it; the next complete healthy run removes what it does "
                  "not see")
    table.add_row("next", f"`forecourt {'crawl' if accepted.kind == 'crawl' else 'ingest'} "
                  f"{slug}` applies it now")
    console.print(table)


def _rescore(slug: str | None, everything: bool, batch_size: int) -> None:
    from pipelines import quality as quality_stage

    with database() as conn:
        dealer_id = dealers_db.get(conn, slug).id if slug else None
        with job_progress() as progress:
            task = progress.add_task(f"rescore {slug or 'all dealers'}", total=None,
                                     status="starting")

            def on_batch(seen: int, changed: int) -> None:
                progress.update(task, status=f"{seen} vehicle(s), {changed} changed")

            counts = quality_stage.rescore(conn, dealer_id, batch_size=batch_size,
                                           everything=everything, on_batch=on_batch)
            progress.update(task, total=1, completed=1,
                            status=f"{counts['seen']} vehicle(s), {counts['changed']} changed")
    table = Table(title="Rescore summary")
    for col in ("dealer", "rules version", "rescored", "changed"):
        table.add_column(col)
    table.add_row(slug or "all", str(RULES_VERSION), str(counts["seen"]), str(counts["changed"]))
    console.print(table)


def register(app: typer.Typer) -> None:
    @app.command("quality")
    def quality(
        target: str = typer.Argument(..., help="A dealership's slug for its run report, "
                                     "`rescore` to rescore stored vehicles, or `accept` to "
                                     "accept a dealer's run as the gate's new baseline."),
        slug: str | None = typer.Argument(None, help="accept: the dealership's slug."),
        job: int | None = typer.Option(None, "--job", help="Report on this job (default: "
                                       "the dealer's latest finished run; when it has no "
                                       "report, the error names the latest run with one)."),
        worst: int = typer.Option(10, "--worst", min=0, max=1000,
                                  help="How many of the worst vehicles to list."),
        dealer: str | None = typer.Option(None, "--dealer", help="rescore: only this "
                                          "dealership's vehicles."),
        everything: bool = typer.Option(False, "--all", help="rescore: every vehicle, not "
                                        "only those scored under older rules."),
        batch_size: int = typer.Option(500, "--batch-size", min=1, max=100_000,
                                       help="rescore: vehicles per batch."),
    ) -> None:
        """Show a run's verdict, reasons, field coverage and worst vehicles, rescore, or
        accept a run as the gate's baseline.

        `forecourt quality <dealer> [--job ID]` reports; `forecourt quality rescore
        [--dealer SLUG] [--all]` recomputes VIN checks, flags and scores of stored vehicles
        scored under older rules (all of them with --all), in batches; `forecourt quality
        accept <dealer> [--job ID]` makes a complete run the gate judged degraded or failed
        (a real drop in stock) the dealer's new baseline, so later runs are judged against
        it and remove again.
        """
        if target == "accept":
            if not slug:
                raise InvalidInput("accept needs a dealership",
                                   hint="use `forecourt quality accept SLUG [--job ID]`")
            _accept(slug, job)
            return
        if slug:
            raise InvalidInput(f"unexpected argument {slug!r}",
                               hint=f"use `forecourt quality {target}` alone for its report")
        if target == "rescore":
            _rescore(dealer, everything, batch_size)
            return
        if dealer or everything:
            raise InvalidInput("--dealer and --all go with `rescore`",
                               hint=f"use `forecourt quality {target}` alone for its report")
        _report(target, job, worst)
