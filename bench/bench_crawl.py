"""Crawl throughput: forecourt's full crawl against a bare Scrapy spider, same pages, same run.

1. generate (seeded, into a temp dir, not timed) a DealerVenom-style site: result pages of 50
   cards each, paged with `pg=N`, and one detail page per vehicle;
2. forecourt end to end: a crawl job for a new dealership on platform `dealervenom`, run as
   production runs it (`crawler.crawl_runner.run_crawl`: a child process, robots.txt,
   netguard, the shared Redis rate limiter with a budget too large to bind, page
   classification, every pipeline stage, binary COPY + MERGE into PostgreSQL, run gate) into a
   scratch database that is dropped afterwards;
3. the baseline: a bare `scrapy.Spider` in its own process with Scrapy's default settings
   except the same concurrency and reactor, fetching the same listing and detail pages and
   calling the same pure `spiders.extract.dealervenom.extract`, storing nothing.

Both serve from one fixture server in this process, both are timed from process start to
exit, AutoThrottle is off in both (it would only measure its own delays). Prints pages per
minute for both and forecourt's ratio to the bare spider.

    .venv/bin/python bench/bench_crawl.py [--vehicles 3000] [--per-page 50] [--seed 7]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from html import escape
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from crawler import fixture_server  # noqa: E402
from crawler.crawl_runner import child_env, run_crawl  # noqa: E402
from crawler.db import connect, migrate  # noqa: E402
from crawler.db import dealers as dealers_db  # noqa: E402
from crawler.db import jobs as jobs_db  # noqa: E402
from quality.vins import check_digit  # noqa: E402

MODELS = [("Kia", "Sportage", "SUV"), ("Kia", "Telluride", "SUV"), ("Kia", "K5", "Sedan"),
          ("Kia", "Carnival", "Minivan"), ("Kia", "Soul", "Hatchback"), ("Kia", "EV6", "SUV"),
          ("Hyundai", "Tucson", "SUV"), ("Hyundai", "Elantra", "Sedan")]
WMI = {"Kia": "KNDP", "Hyundai": "KM8J"}
YEAR_CODES = {2021: "M", 2022: "N", 2023: "P", 2024: "R", 2025: "S"}
CONCURRENCY = 16


def make_vin(rng: random.Random, make: str, year: int) -> str:
    alphabet = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"
    body = WMI[make] + "".join(rng.choice(alphabet) for _ in range(4))
    draft = body + "0" + YEAR_CODES[year] + rng.choice("ABCDEFG") + f"{rng.randrange(10**6):06d}"
    return draft[:8] + check_digit(draft) + draft[9:]


def generate(root: Path, vehicles: int, per_page: int, seed: int) -> None:
    rng = random.Random(seed)
    cars = []
    for _ in range(vehicles):
        make, model, body = rng.choice(MODELS)
        year = rng.choice(list(YEAR_CODES))
        msrp = rng.randrange(22_000, 60_000, 5)
        cars.append({"vin": make_vin(rng, make, year), "make": make, "model": model,
                     "body": body, "year": year, "trim": rng.choice(["LX", "EX", "SX", "S"]),
                     "stock": f"B{rng.randrange(10**5):05d}", "msrp": msrp,
                     "price": msrp - rng.randrange(0, 3000, 5),
                     "miles": rng.randrange(0, 60_000), "color": rng.choice(
                         ["Wolf Gray", "Snow White Pearl", "Ebony Black", "Runway Red"])})
    (root / "robots.txt").write_text("User-agent: *\nDisallow: /wp-admin/\n")
    pages = [cars[i:i + per_page] for i in range(0, len(cars), per_page)]
    for n, chunk in enumerate(pages, 1):
        cards = "".join(
            f'<div class="listing-container" data-url="{vdp(c)}" data-vin="{c["vin"]}" '
            f'data-stock="{c["stock"]}" data-year="{c["year"]}" data-make="{c["make"]}" '
            f'data-model="{c["model"]}" data-trim="{c["trim"]}" data-condition="New">'
            f'<h3 class="listing-title"><a href="{vdp(c)}">{c["year"]} {c["make"]} '
            f'{c["model"]}</a></h3><ul class="listing-price-stack"><li><span class="price-label">'
            f'MSRP</span><span class="price-value">${c["msrp"]:,}</span></li><li><span '
            f'class="price-label">Buy Price</span><span class="price-value">${c["price"]:,}'
            f'</span></li></ul></div>' for c in chunk)
        pager = (f'<ul class="ais-pagination-ul"><li><a class="ais-Pagination-link" '
                 f'href="/new-vehicles/?pg={n + 1}"><i class="fa-solid fa-chevron-right"></i>'
                 f'</a></li></ul>' if n < len(pages) else "")
        html = (f"<!doctype html><html><head><title>New vehicles | Bench Kia</title></head>"
                f"<body><main id='srp'>{cards}{pager}</main></body></html>")
        target = root / ("new-vehicles/index.html" if n == 1 else f"new-vehicles__pg-{n}.html")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(html)
    for c in cars:
        data = {"vin": c["vin"], "stockNumber": c["stock"], "year": c["year"], "make": c["make"],
                "model": c["model"], "trim": c["trim"], "condition": "New",
                "exteriorColor": c["color"], "bodyStyle": c["body"], "mileage": c["miles"],
                "msrp": c["msrp"], "displayedPrice": c["price"]}
        ld = {"@context": "https://schema.org", "@type": "Car", "name": f"{c['year']} {c['model']}",
              "vehicleIdentificationNumber": c["vin"], "image": [
                  f"https://cdn.example/{c['vin']}/{i}.jpg" for i in range(1, 6)],
              "offers": {"@type": "Offer", "price": c["price"], "priceCurrency": "USD"}}
        html = (f"<!doctype html><html><head><title>{c['year']} {c['make']} {c['model']}</title>"
                f"<script type='application/ld+json'>{json.dumps(ld)}</script></head><body>"
                f"<main class='vdp' data-vehicle=\"{escape(json.dumps(data))}\">"
                f"<h1>{c['year']} {c['make']} {c['model']}</h1><div class='in-stock-vehicle'>"
                f"In stock</div><p>{'Well equipped and ready to drive. ' * 40}</p></main>"
                f"</body></html>")
        target = root / vdp(c).strip("/") / "index.html"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(html)


def vdp(c: dict) -> str:
    return f"/vehicle/New/{c['year']}/{c['make']}/{c['model']}/{c['vin']}/"


BARE = """
import sys, time, json
import scrapy
from scrapy.crawler import CrawlerProcess
from spiders.extract.dealervenom import extract, next_page

class Bare(scrapy.Spider):
    name = "bare"
    start_urls = [sys.argv[1]]
    items = 0

    def parse(self, response):
        for card in extract(response.text, response.url):
            yield scrapy.Request(card.url, callback=self.parse_detail)
        following = next_page(response.text, response.url)
        if following:
            yield scrapy.Request(following)

    def parse_detail(self, response):
        Bare.items += len(extract(response.text, response.url))

process = CrawlerProcess({"CONCURRENT_REQUESTS": int(sys.argv[2]),
                          "CONCURRENT_REQUESTS_PER_DOMAIN": int(sys.argv[2]),
                          "LOG_LEVEL": "WARNING", "TELNETCONSOLE_ENABLED": False,
                          "TWISTED_REACTOR":
                              "twisted.internet.asyncioreactor.AsyncioSelectorReactor"})
crawler = process.create_crawler(Bare)
process.crawl(crawler)
process.start()
print(json.dumps({"pages": crawler.stats.get_value("response_received_count"),
                  "items": Bare.items}))
"""


def bare_crawl(url: str) -> tuple[int, int, float]:
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", BARE, url, str(CONCURRENCY)], cwd=ROOT,
                          env=child_env(), capture_output=True, text=True, check=True)
    elapsed = time.perf_counter() - t0
    out = json.loads(done.stdout.strip().splitlines()[-1])
    return out["pages"], out["items"], elapsed


def forecourt_crawl(url: str) -> tuple[int, int, float, str]:
    with connect() as conn:
        migrate(conn)
        dealer = dealers_db.create(
            conn, slug=f"bench-crawl-{int(time.time())}", name="Bench Kia", website_url=url,
            platform="dealervenom",
            settings={"scrapy": {"AUTOTHROTTLE_ENABLED": False, "LOG_LEVEL": "INFO",
                                 "CONCURRENT_REQUESTS": CONCURRENCY,
                                 "CONCURRENT_REQUESTS_PER_DOMAIN": CONCURRENCY}})
        job, _ = jobs_db.create_or_get_active(conn, dealer.id, "crawl", "operator")
        jobs_db.start(conn, job.id, "bench")
    t0 = time.perf_counter()
    job = run_crawl(job.id, time_limit_s=3600)
    elapsed = time.perf_counter() - t0
    return job.counters.get("pages", 0), job.counters.get("valid", 0), elapsed, job.state


@contextmanager
def scratch_servers():
    """A throwaway database (on DATABASE_URL's server, else embedded in a temp dir) and
    Redis namespace, so the benchmark leaves nothing behind."""
    import uuid

    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    from crawler.config import reset_settings
    from crawler.db.connect import forget_urls

    os.environ["FORECOURT_REDIS_NAMESPACE"] = f"bench-{uuid.uuid4().hex[:8]}"
    base = os.environ.get("DATABASE_URL")
    with tempfile.TemporaryDirectory(prefix="forecourt-bench-data-") as data_dir:
        if base:
            name = f"forecourt_bench_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(base, autocommit=True) as admin:
                admin.execute(f'CREATE DATABASE "{name}"')
            os.environ["DATABASE_URL"] = make_conninfo(**{**conninfo_to_dict(base),
                                                           "dbname": name})
        else:
            os.environ["FORECOURT_DATA_DIR"] = data_dir
        reset_settings()
        forget_urls()
        try:
            yield
        finally:
            forget_urls()
            if base:
                with psycopg.connect(base, autocommit=True) as admin:
                    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                os.environ["DATABASE_URL"] = base
            else:
                from crawler import embedded

                embedded.stop(Path(data_dir))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vehicles", type=int, default=3000)
    ap.add_argument("--per-page", type=int, default=50)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--without-rate-limit", action="store_true",
                    help="switch the shared Redis rate limiter off (to see its cost)")
    args = ap.parse_args()
    os.environ.setdefault("FORECOURT_ALLOW_PRIVATE_HOSTS", '["127.0.0.1"]')
    # a budget far above what one machine serves: the limiter's Redis round trip is measured,
    # never its waiting
    os.environ["FORECOURT_PLATFORM_RATE_LIMITS"] = json.dumps(
        {} if args.without_rate_limit else {"dealervenom": 100000})
    os.environ["FORECOURT_PLATFORM_RATE_BURST"] = "100000"
    with scratch_servers(), tempfile.TemporaryDirectory(prefix="forecourt-bench-site-") as tmp:
        site = Path(tmp)
        generate(site, args.vehicles, args.per_page, args.seed)
        with fixture_server.serving(site) as base:
            url = base + "/new-vehicles/"
            b_pages, b_items, b_s = bare_crawl(url)
            f_pages, f_valid, f_s, state = forecourt_crawl(url)
    b_ppm, f_ppm = b_pages / b_s * 60, f_pages / f_s * 60
    print(f"site: {args.vehicles} vehicles, {args.per_page} per results page (seed {args.seed})")
    print(f"bare scrapy : {b_pages:6d} pages {b_items:6d} items  {b_s:7.1f} s  "
          f"{b_ppm:9.0f} pages/min")
    print(f"forecourt   : {f_pages:6d} pages {f_valid:6d} stored {f_s:7.1f} s  "
          f"{f_ppm:9.0f} pages/min  (job {state})")
    print(f"ratio forecourt / bare: {f_ppm / b_ppm:.2f}")


if __name__ == "__main__":
    main()
