"""The platform budget in Redis is shared by separate processes: counted grants, not timings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import pytest
import redis

from crawler import ratelimit
from crawler.config import PROJECT_ROOT
from crawler.crawl_runner import child_env, run_crawl
from crawler.db import dealers as dealers_db
from crawler.db import jobs as jobs_db
from crawler.db import redis_url

pytestmark = pytest.mark.integration

CONSUMER = """
import json, sys, time
import redis
from crawler import ratelimit
url, ns, backend, rate, burst, tries = sys.argv[1:]
limiter = ratelimit.SharedLimiter(redis.Redis.from_url(url), ns)
budget = ratelimit.Budget(rate=float(rate), burst=int(burst))
limiter.client.ping()
print("ready", flush=True)
stop = float(sys.stdin.readline())  # the parent opens the window once every process is ready
granted = attempts = 0
while time.time() < stop and attempts < int(tries):
    attempts += 1
    if limiter.try_acquire(backend, budget) == 0:
        granted += 1
print(json.dumps({"granted": granted, "attempts": attempts}), flush=True)
"""


def consumers(backend: str, rate: float, burst: int, window_s: float, tries: int,
              n: int = 2) -> list[dict]:
    """Run `n` consumer processes over one window opened when all are ready; their reports."""
    # inside the session's namespace, so its clean-up at the end removes these keys too
    ns = f"{os.environ['FORECOURT_REDIS_NAMESPACE']}:rl-{time.time_ns()}"
    args = [redis_url(), ns, backend, str(rate), str(burst), str(tries)]
    procs = [subprocess.Popen([sys.executable, "-c", CONSUMER, *args], cwd=PROJECT_ROOT,
                              env=child_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
             for _ in range(n)]
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    stop = time.time() + window_s
    for p in procs:
        p.stdin.write(f"{stop}\n")
        p.stdin.flush()
    reports = [json.loads(p.communicate(timeout=60)[0]) for p in procs]
    stats = ratelimit.SharedLimiter(redis.Redis.from_url(redis_url()), ns).stats(backend)
    assert stats["granted"] == sum(r["granted"] for r in reports)
    return reports


def test_two_processes_split_one_burst_exactly():
    # a budget that does not refill within the test: 10 requests in all, whoever asks
    reports = consumers("slowapi", rate=0.0001, burst=10, window_s=5, tries=25)
    assert sum(r["attempts"] for r in reports) == 50
    assert sum(r["granted"] for r in reports) == 10


def test_two_processes_share_the_refill_rate():
    rate, burst, window = 20.0, 2, 1.5
    reports = consumers("busyapi", rate=rate, burst=burst, window_s=window, tries=10**7)
    total = sum(r["granted"] for r in reports)
    # one budget: at most burst + rate x window between them (each alone could take that)
    assert total <= burst + rate * window + 1
    assert total > burst  # and it refilled during the window
    assert all(r["attempts"] > r["granted"] for r in reports)  # both were held back


def test_two_crawls_of_one_platform_share_its_budget(db, site, monkeypatch):
    monkeypatch.setenv("FORECOURT_PLATFORM_RATE_LIMITS", json.dumps({"dealervenom": 5}))
    monkeypatch.setenv("FORECOURT_PLATFORM_RATE_BURST", "1")
    client = redis.Redis.from_url(redis_url())
    limiter = ratelimit.SharedLimiter(client)
    before = limiter.stats("dealervenom")
    jobs = []
    for slug in ("juniper-a", "juniper-b"):
        base = site("dealervenom")
        dealer = dealers_db.create(db, slug=slug, name=slug, platform="dealervenom",
                                   website_url=base + "/new-vehicles/")
        job, _ = jobs_db.create_or_get_active(db, dealer.id, "crawl", "operator")
        jobs_db.start(db, job.id, "test")
        jobs.append(job.id)
    results = {}
    threads = [threading.Thread(
        target=lambda j=j: results.update({j: run_crawl(j, time_limit_s=120)})) for j in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(results[j].state == "succeeded" for j in jobs), [results[j].error for j in jobs]
    after = limiter.stats("dealervenom")
    granted = after.get("granted", 0) - before.get("granted", 0)
    waits = after.get("waits", 0) - before.get("waits", 0)
    # robots.txt, two result pages and four detail pages per dealer, all through one budget
    assert granted == 14
    assert waits > 0


def test_requests_go_ahead_and_are_counted_when_redis_is_unreachable():
    import asyncio
    import socket

    import scrapy
    from scrapy.utils.test import get_crawler

    from crawler.middlewares import PlatformRateLimitMiddleware

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    crawler = get_crawler(scrapy.Spider)
    crawler.stats.open_spider()
    middleware = PlatformRateLimitMiddleware(
        crawler, {"dealervenom": ratelimit.Budget(rate=1, burst=1)},
        f"redis://127.0.0.1:{port}/0", max_wait_s=1)
    request = scrapy.Request("http://127.0.0.1/x", meta={"rate_limit_backend": "dealervenom"})
    assert asyncio.run(middleware.process_request(request)) is None
    assert crawler.stats.get_value("forecourt/ratelimit/unchecked") == 1
    other = scrapy.Request("http://127.0.0.1/y", meta={"rate_limit_backend": "unbudgeted"})
    assert asyncio.run(middleware.process_request(other)) is None
    assert crawler.stats.get_value("forecourt/ratelimit/unchecked") == 1
