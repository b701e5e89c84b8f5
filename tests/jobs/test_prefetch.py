"""A worker holds only the messages it can start now (jobs/prefetch.py): an operator or
scheduled message it has no idle thread for stays in Redis, where an idle worker takes it."""

from __future__ import annotations

import pytest

from crawler.db import dealers as dealers_db
from crawler.db import jobs as jobs_db
from jobs.prefetch import PRIORITY, SCHEDULED, limits
from tests.jobs.conftest import end_now, site_copy, slow_routes, wait_final, wait_for


def _limits(threads, slots, running, outstanding):
    got = limits(threads, slots, {PRIORITY: running[0], SCHEDULED: running[1]},
                 {PRIORITY: outstanding[0], SCHEDULED: outstanding[1]})
    return got[PRIORITY], got[SCHEDULED]


def test_each_consumer_may_take_only_what_the_process_can_start_now():
    # idle, 2 threads: priority may take 2, scheduled its 1 slot
    assert _limits(2, 1, (0, 0), (0, 0)) == (2, 1)
    # a scheduled crawl runs: one idle thread, for priority only (no slot left)
    assert _limits(2, 1, (0, 1), (0, 1)) == (1, 1)
    # a scheduled and an operator crawl run: nothing more (was: priority took a 2nd message)
    assert _limits(2, 1, (1, 1), (1, 1)) == (1, 1)
    # two operator crawls run: the free scheduled slot has no idle thread (was: 1 taken)
    assert _limits(2, 1, (2, 0), (2, 0)) == (2, 0)
    # 3 threads, a scheduled crawl runs, two priority messages taken but not started yet:
    # the scheduled consumer leaves the idle threads to them
    assert _limits(3, 2, (0, 1), (2, 1)) == (2, 1)
    # ... and with one idle thread left over it may take one
    assert _limits(4, 3, (0, 2), (1, 2)) == (2, 3)
    # a message already taken counts: no second fetch for the same idle thread
    assert _limits(2, 1, (1, 0), (2, 0)) == (2, 0)
    # a consumer reconnected (it knows none of the running messages): only the idle threads
    assert _limits(3, 2, (1, 1), (0, 0)) == (1, 1)


def test_a_render_queue_takes_only_what_its_plain_queue_may():
    """A worker that has Chromium consumes priority.render and scheduled.render too: each
    counts with its plain queue, so a busy worker holds no rendered crawl (it waits in Redis
    for the next worker with Chromium and an idle thread) and rendered scheduled crawls use
    the same scheduled slots."""
    from jobs.queues import PRIORITY_RENDER, SCHEDULED_RENDER

    def got(running, outstanding):
        names = (PRIORITY, SCHEDULED, PRIORITY_RENDER, SCHEDULED_RENDER)
        found = limits(2, 1, dict(zip(names, running, strict=True)),
                       dict(zip(names, outstanding, strict=True)))
        return tuple(found[q] for q in names)

    # idle: priority and priority.render may each take the 2 threads, scheduled its slot
    assert got((0, 0, 0, 0), (0, 0, 0, 0)) == (2, 1, 2, 1)
    # a rendered operator crawl and a scheduled one run: nothing more, on any queue
    assert got((0, 1, 1, 0), (0, 1, 1, 0)) == (0, 1, 1, 0)
    # a rendered scheduled crawl holds the only slot: no scheduled message of either kind
    assert got((0, 0, 0, 1), (0, 0, 0, 1)) == (1, 0, 1, 1)


integration = pytest.mark.integration


@integration
def test_an_operator_job_is_not_held_by_a_busy_worker_while_another_worker_is_idle(
        db, site, start_workers, tmp_path):
    """A worker running a scheduled and an operator crawl on its 2 threads used to take a
    second operator message (the priority consumer prefetched `threads` messages) and hold
    it until one of its crawls ended, while a worker started after it stayed idle."""
    from jobs import service

    slow = site(site_copy(tmp_path, slow_routes(2.5, step_s=0.3), name="slow"))
    quick = site(site_copy(tmp_path, {}, name="quick"))
    start_workers(1, threads=2)
    busy = []
    for i, trig in enumerate(("schedule", "operator")):
        dealer = dealers_db.create(db, slug=f"busy-{i}", name=f"Busy {i}",
                                   website_url=slow + "/inventory/")
        busy.append(service.trigger(db, dealer.id, "crawl", trig)[0])
    wait_for(lambda: all(jobs_db.get(db, j.id).state == "running" for j in busy),
             what="a scheduled and an operator crawl running")

    dealer = dealers_db.create(db, slug="urgent", name="Urgent",
                               website_url=quick + "/inventory/")
    urgent, _ = service.trigger(db, dealer.id, "crawl", "operator")
    start_workers(1, threads=2)  # an idle worker joins (the busy one polls meanwhile)

    urgent = wait_final(db, urgent.id)
    ended = end_now(db, busy)  # a busy crawl that ended first (the bug) keeps its end
    assert urgent.state == "succeeded"
    assert urgent.started_at < min(j.finished_at for j in ended), (
        "the operator job waited for a crawl on a busy worker while another worker was idle")


@integration
def test_a_scheduled_job_is_not_held_by_a_worker_whose_threads_are_all_busy(
        db, site, start_workers, tmp_path):
    """A worker whose 2 threads run operator crawls still has its scheduled slot free: it
    used to take the oldest scheduled message and hold it until a crawl ended, while a
    worker started after it ran the scheduled jobs queued later (not first in, first out)."""
    from jobs import service

    slow = site(site_copy(tmp_path, slow_routes(2.5, step_s=0.3), name="slow"))
    quick = site(site_copy(tmp_path, {}, name="quick"))
    start_workers(1, threads=2)
    operator = []
    for i in range(2):  # both threads of the only worker run operator crawls
        dealer = dealers_db.create(db, slug=f"op-{i}", name=f"Op {i}",
                                   website_url=slow + "/inventory/")
        operator.append(service.trigger(db, dealer.id, "crawl", "operator")[0])
    wait_for(lambda: all(jobs_db.get(db, j.id).state == "running" for j in operator),
             what="both operator crawls running")

    first_dealer = dealers_db.create(db, slug="sched-first", name="First",
                                     website_url=quick + "/inventory/")
    first, _ = service.trigger(db, first_dealer.id, "crawl", "schedule")
    start_workers(1, threads=2)  # an idle worker joins (the busy one polls meanwhile)
    second_dealer = dealers_db.create(db, slug="sched-second", name="Second",
                                      website_url=quick + "/inventory/")
    second, _ = service.trigger(db, second_dealer.id, "crawl", "schedule")

    second = wait_final(db, second.id)
    first = wait_final(db, first.id)
    ops = end_now(db, operator)  # an operator crawl that ended first (the bug) keeps its end
    assert first.state == second.state == "succeeded"
    assert first.started_at <= second.started_at, (
        "the older scheduled job waited on a busy worker while a newer one ran on an idle "
        "worker: not first in, first out")
    assert first.started_at < min(j.finished_at for j in ops), (
        "the scheduled job waited for an operator crawl to end although a worker was idle")


def test_a_worker_that_lost_chromium_takes_no_new_render_message():
    """jobs/renderers.py: a worker that finds its Chromium gone keeps its render queues'
    consumers but lets them take nothing new (they hold what they hold); its plain queues
    take what they took before."""
    from jobs.queues import PRIORITY_RENDER, SCHEDULED_RENDER

    names = (PRIORITY, SCHEDULED, PRIORITY_RENDER, SCHEDULED_RENDER)
    idle = dict.fromkeys(names, 0)
    assert limits(2, 1, idle, idle, render=False) == {
        PRIORITY: 2, SCHEDULED: 1, PRIORITY_RENDER: 0, SCHEDULED_RENDER: 0}
    # one render message was taken just before: held (it runs, and is put back), no more
    held = {**idle, PRIORITY_RENDER: 1}
    assert limits(2, 1, idle, held, render=False)[PRIORITY_RENDER] == 1
    assert limits(2, 1, idle, held)[PRIORITY_RENDER] == 2  # with Chromium: as before
