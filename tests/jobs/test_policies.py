"""Pure rules of the job queue: error classes, backoff, schedule slots."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest

from crawler.errors import InvalidInput, NotFound, Permanent, Transient
from crawler.models import Dealership, Job
from jobs import outcome
from jobs.scheduler import backoff_s, next_slot, validate


def _job(**kw) -> Job:
    base = {"id": 1, "dealership_id": 1, "kind": "crawl", "trigger": "operator",
            "state": "failed", "created_at": datetime.now(UTC)}
    return Job.model_validate(base | kw)


@pytest.mark.parametrize("exc, expected", [
    (Transient("x"), "transient"), (psycopg.OperationalError("lost"), "transient"),
    (ConnectionResetError(), "transient"), (Permanent("gone"), "permanent"),
    (InvalidInput("bad"), "permanent"), (NotFound("no"), "permanent"),
])
def test_exceptions_are_classed_transient_or_permanent(exc, expected):
    assert outcome.classify_exception(exc) == expected


def test_settled_jobs_are_classed_by_their_error():
    assert outcome.classify_settled(_job(state="succeeded")) is None
    assert outcome.classify_settled(_job(state="partial")) is None
    assert outcome.classify_settled(_job(error_kind="crash")) == "transient"
    assert outcome.classify_settled(_job(error_kind="timeout")) == "permanent"
    failed_5xx = _job(error_kind="failed", report={"reasons": [
        "listing page http://x/inventory/ failed: Ignoring non-200 response", "no vehicles found"]})
    assert outcome.classify_settled(failed_5xx) == "transient"
    gone = _job(error_kind="failed", report={"reasons": [
        "not_found listing page http://x/inventory/ (HTTP 404)", "no vehicles found"]})
    assert outcome.classify_settled(gone) == "permanent"
    # a warning is not why the run failed: a sitemap's 503 does not make it worth retrying
    wrong_page = _job(error_kind="failed", report={"reasons": [
        "warning: sitemap http://x/sitemap.xml not read (HTTP 503); the listing pages were "
        "read without it", "no vehicles found"]})
    assert outcome.classify_settled(wrong_page) == "permanent"
    assert outcome.classify_settled(_job(kind="feed", error_kind="InvalidInput")) == "permanent"
    assert outcome.classify_settled(_job(kind="feed", error_kind="Transient")) == "transient"


def test_a_dealer_url_netguard_refuses_is_permanent_though_its_error_says_refused():
    """crawler.crawl_process settles a forbidden dealer URL as error_kind unsafe_url; its
    message ("refused 10.0.0.1 ...") must not read as a refused connection and be retried."""
    unsafe = _job(error_kind="unsafe_url", error="refused 10.0.0.1 (10.0.0.1): a private "
                  "address (list the host or network in FORECOURT_ALLOW_PRIVATE_HOSTS if it "
                  "is really meant to be fetched)")
    assert outcome.classify_settled(unsafe) == "permanent"


def test_a_failed_queued_job_awaits_its_worker_only_when_it_will_act():
    transient = {"error_kind": "crash", "queue": "priority", "attempts": 1}
    assert outcome.awaiting_worker(_job(**transient))  # to be requeued (or buried)
    assert not outcome.awaiting_worker(_job(**transient | {"queue": None}))  # at the terminal
    assert not outcome.awaiting_worker(_job(**transient | {"attempts": 0}))  # never enqueued
    assert not outcome.awaiting_worker(_job(**transient | {"error_kind": "timeout"}))
    assert outcome.awaiting_worker(_job(**transient | {"error_kind": "timeout",
                                                       "cancel_requested_at": datetime.now(UTC)}))
    assert not outcome.awaiting_worker(_job(**transient | {"state": "dead"}))


def test_only_what_a_worker_always_records_is_owed_by_a_worker_that_may_have_died():
    """The reaper acts for a worker it takes for dead (jobs/reaper.py) only where a live
    worker would have changed the record: a hand-on for want of Chromium may have been
    declined on purpose (no worker that has Chromium alive), which leaves it failed."""
    transient = {"error_kind": "crash", "queue": "priority", "attempts": 1}
    assert outcome.owed_by_its_worker(_job(**transient))
    assert not outcome.owed_by_its_worker(_job(**transient | {"error_kind": "timeout"}))
    no_chromium = _job(**transient | {"error_kind": outcome.NO_CHROMIUM})
    assert outcome.awaiting_worker(no_chromium) and not outcome.owed_by_its_worker(no_chromium)
    cancelled = no_chromium.model_copy(update={"cancel_requested_at": datetime.now(UTC)})
    assert outcome.owed_by_its_worker(cancelled)  # its cancelled end, whatever it lacked


def test_a_crawl_without_chromium_awaits_its_worker_s_hand_off_and_is_not_a_retry():
    """An attempt that failed for want of Chromium on its worker (jobs/failures.py sends it to
    the render queue, or hands it on through its own queue to an older release's worker
    that has Chromium, at most MAX_CHROMIUM_HANDOFFS times): permanent, awaiting its worker
    however often it was handed on (the render queue has no bound), and not counted against
    job_max_attempts."""
    def failed(kinds: list[str]) -> Job:
        return _job(error_kind=kinds[-1], queue="priority", attempts=len(kinds),
                    errors=[{"attempt": i + 1, "kind": k, "error": "x"}
                            for i, k in enumerate(kinds)])

    once = failed([outcome.NO_CHROMIUM])
    assert outcome.NO_CHROMIUM.startswith("permanent:")  # older workers fail it as before
    assert outcome.classify_settled(once) == outcome.PERMANENT
    assert outcome.may_hand_on(once) and outcome.awaiting_worker(once)
    last = failed([outcome.NO_CHROMIUM] * outcome.MAX_CHROMIUM_HANDOFFS)
    assert outcome.may_hand_on(last)
    past = failed([outcome.NO_CHROMIUM] * (outcome.MAX_CHROMIUM_HANDOFFS + 1))
    assert outcome.needs_chromium(past) and not outcome.may_hand_on(past)
    assert outcome.awaiting_worker(past)  # it may still go to the render queue
    # then run where Chromium is, it failed for another reason: only that attempt counts
    later = failed([outcome.NO_CHROMIUM, outcome.NO_CHROMIUM, "crash"])
    assert not outcome.needs_chromium(later) and outcome.retries_used(later) == 1
    assert not outcome.may_hand_on(failed(["permanent"]))


def test_backoff_grows_exponentially_with_jitter_and_a_cap():
    for attempt, ceiling in ((1, 5), (2, 10), (3, 20), (8, 60)):
        waits = [outcome.backoff_s(attempt, 5, 60) for _ in range(200)]
        assert all(ceiling / 2 <= w <= ceiling for w in waits)
        assert len(set(waits)) > 1


def test_cron_slots_follow_the_dealers_timezone_across_dst():
    dealer = Dealership(id=1, slug="d", name="D", schedule_cron="0 6 * * *",
                        schedule_tz="America/New_York")
    before_dst = next_slot(dealer, datetime(2026, 3, 7, 12, tzinfo=UTC))
    after_dst = next_slot(dealer, datetime(2026, 3, 8, 12, tzinfo=UTC))
    assert before_dst == datetime(2026, 3, 8, 10, tzinfo=UTC)  # 06:00 EDT
    assert after_dst == datetime(2026, 3, 9, 10, tzinfo=UTC)
    every_15 = dealer.model_copy(update={"schedule_cron": None, "schedule_interval_s": 900})
    first = next_slot(every_15, datetime(2026, 3, 8, 6, 46, tzinfo=UTC))  # 01:46 EST
    assert first < datetime(2026, 3, 8, 7, tzinfo=UTC)  # clocks go forward at 07:00 UTC
    assert next_slot(every_15, first).timestamp() - first.timestamp() == 900


def test_schedule_backoff_starts_at_the_second_failure_and_is_capped():
    assert backoff_s(0) == backoff_s(1) == 0
    assert 0 < backoff_s(2) < backoff_s(3) < backoff_s(4)
    assert backoff_s(50) == 6 * 3600


def test_bad_schedules_are_refused_with_the_fix():
    with pytest.raises(InvalidInput, match="cron"):
        validate("every day", "UTC")
    with pytest.raises(InvalidInput, match="timezone"):
        validate("0 6 * * *", "Mars/Olympus")
    validate("*/15 * * * *", "Europe/Berlin")
