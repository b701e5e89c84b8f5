"""Interval schedules over weeks of ticks: the tick's own next-run arithmetic
(scheduler.upcoming_run, enqueue_retry_at) driven by a fake clock, as the leader runs it
every few seconds. Pure logic: no database."""

from __future__ import annotations

import heapq
import math
import random
from collections import Counter
from datetime import UTC, datetime, timedelta

from crawler.models import Dealership
from jobs.scheduler import ENQUEUE_RETRY_S, enqueue_retry_at, upcoming_run

TICK_S = 5
JITTER_S = 30.0  # the default schedule_jitter_s
HOUR = timedelta(hours=1)
WEEK = timedelta(weeks=1)


def _simulate(dealers, start, end, redis_down=(None, None), seed=7):
    """Each dealer's run times from start to end: every dealer is new at the first tick;
    a tick every TICK_S seconds runs the dealers due by then; while Redis is down a due
    slot's job cannot be queued and the slot is tried again as the tick does."""
    rng = random.Random(seed)
    by_id = {d.id: d for d in dealers}
    runs: dict[int, list[datetime]] = {d.id: [] for d in dealers}
    heap = [(upcoming_run(d, None, start, 0, rng.uniform(0, JITTER_S)), d.id) for d in dealers]
    heapq.heapify(heap)
    down_from, down_until = redis_down
    while heap[0][0] < end:
        due, dealer_id = heapq.heappop(heap)
        now = start + TICK_S * timedelta(seconds=math.ceil((due - start).total_seconds()
                                                           / TICK_S))
        jitter = rng.uniform(0, JITTER_S)
        upcoming = upcoming_run(by_id[dealer_id], due, now, 0, jitter)
        if down_from is not None and down_from <= now < down_until:
            upcoming = enqueue_retry_at(upcoming, now, 0, jitter)
        else:
            runs[dealer_id].append(now)
        heapq.heappush(heap, (upcoming, dealer_id))
    return runs


def test_hourly_dealers_added_together_run_every_hour_for_weeks_spread_over_the_hour():
    """200 hourly dealers added in one go (an import) all ran within the same 30 s (the
    jitter) every hour, and each slot's jitter was added into the dealer's phase: every
    dealer ran on average 15 s later each time, so an hourly dealer ran some 669 times in four
    weeks, not 672, and every dealer's phase crept hours later. A 30-minute Redis outage
    re-set the phase of the dealers due in it to the outage's end: they ran together from
    then on."""
    dealers = [Dealership(id=i, slug=f"d{i}", name=f"D{i}", schedule_interval_s=3600)
               for i in range(1, 201)]
    start = datetime(2026, 1, 5, 9, 0, 2, tzinfo=UTC)
    end = start + 4 * WEEK
    down = (start + WEEK + timedelta(days=2, hours=1), start + WEEK + timedelta(days=2, hours=1,
                                                                               minutes=30))
    runs = _simulate(dealers, start, end, redis_down=down)

    # every hour, for four weeks: no run lost to creeping (a slot Redis refused ran late)
    assert Counter(len(r) for r in runs.values()) == Counter({672: 200})
    # and each dealer at the same time within the hour in week 4 as in week 1
    for dealer_id, times in runs.items():
        first, last = times[0], times[-1]
        drift = (last - first) - (len(times) - 1) * HOUR
        assert abs(drift.total_seconds()) <= JITTER_S + TICK_S, (dealer_id, drift)
    # the slots the outage held back (half an hour's: some 100 dealers) run once each when
    # the retries after it come round, within about a minute and a half
    retries_end = down[1] + timedelta(seconds=ENQUEUE_RETRY_S + JITTER_S + TICK_S)
    catch_up = Counter(i for i, times in runs.items() for t in times if down[1] <= t < retries_end)
    assert 90 <= len(catch_up) <= 110 and set(catch_up.values()) == {1}, catch_up
    # otherwise spread over the hour, from the first hour on: no minute starts more than a
    # few dealers (200 an hour is 3.3 a minute)
    per_minute = Counter(t.replace(second=0) for times in runs.values() for t in times
                         if not down[1] <= t < retries_end)
    assert max(per_minute.values()) <= 8, per_minute.most_common(3)
