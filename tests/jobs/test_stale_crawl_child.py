"""A crawl child knows which attempt it runs for (real PostgreSQL, a real crawl child and a
fixture site).

A worker that stalls while its crawl child starts (a paused or starved machine: only the
worker heartbeats the job until the child opens its spider) has its attempt taken over by
another worker. The soak (bench/bench_soak.py --stall-every) saw this: the first child,
which read the job only once it had started, took the successor's attempt number for its
own, so nothing fenced it: it could crawl, record progress and settle the job as that
attempt, beside the crawl that really runs it, until its stalled worker woke and killed it.
"""

from __future__ import annotations

import subprocess
import sys

from crawler.config import PROJECT_ROOT
from crawler.crawl_runner import child_env
from crawler.db import dealers as dealers_db
from crawler.db import job_queue as queue_db
from crawler.db import jobs as jobs_db


def test_a_crawl_child_whose_attempt_was_taken_over_before_it_started_crawls_nothing(
        db, site):
    dealer = dealers_db.create(db, slug="stalled", name="Stalled",
                               website_url=site("generic") + "/inventory/")
    job, _ = jobs_db.create_or_get_active(db, dealer.id, "crawl", "schedule")
    queue_db.set_message(db, job.id, "scheduled", "m1")
    assert queue_db.claim(db, job.id, "w1:1:T", 60, "m1").attempts == 1
    # its worker stalls while its child starts: another worker takes the attempt over
    db.execute("UPDATE jobs SET heartbeat_at = now() - interval '1 minute' WHERE id = %s",
               (job.id,))
    assert queue_db.take_over(db, job.id, "w2:2:T", 30, "m2").attempts == 2
    # attempt 1's child, which had not read the job yet, gets that far only now
    subprocess.run([sys.executable, "-m", "crawler.crawl_process", str(job.id), "1"],
                   env=child_env(), cwd=str(PROJECT_ROOT), check=True, timeout=300,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    after = jobs_db.get(db, job.id)
    assert (after.state, after.attempts, after.worker) == ("running", 2, "w2:2:T"), \
        (after.state, after.error)
    assert after.counters == {}  # attempt 2's live counters, untouched
    assert not db.execute("SELECT 1 FROM vehicles WHERE dealership_id = %s",
                          (dealer.id,)).fetchall()
