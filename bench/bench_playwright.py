"""The Playwright path with and without resource blocking, same pages, same run.

1. generate (seeded, into a temp dir, not timed) a JavaScript-only dealer site like
   fixtures/sites/javascript: result pages whose HTML holds no vehicles; a script fetches
   each page's JSON and renders cards, each card with a photo (a real PNG of ~190 KB), the page
   with a web font and a background video;
2. crawl it with forecourt's `javascript` spider (system Chromium through scrapy-playwright)
   in a child process, twice: as shipped (images, fonts and media aborted) and with the
   abort predicate removed (the baseline: everything the page asks for is fetched).

All result pages are given up front, so pages render side by side within the configured
bounds. Prints, for each, rendered pages per minute (Scrapy's elapsed crawl time, browser
launch included), vehicles found, requests the site served, and the peak RSS of the crawl
process tree (Scrapy plus Chromium); then the ratio of
pages per minute, blocked over unblocked.

    .venv/bin/python bench/bench_playwright.py [--pages 20] [--cards 24] [--seed 7]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402

from crawler import fixture_server  # noqa: E402
from crawler.crawl_runner import child_env  # noqa: E402
from quality.vins import check_digit  # noqa: E402

SHELL = """<!doctype html><html><head><meta charset="utf-8"><title>Inventory | Bench Motors</title>
<style>@font-face{font-family:Bench;src:url("/static/bench.woff2") format("woff2")}
body{font-family:Bench,sans-serif}</style>
<script src="/static/app.js" defer></script></head><body>
<video src="/static/lot-tour.mp4" autoplay muted loop></video>
<div id="app">Loading&hellip;</div></body></html>"""

APP = """(function () {
  var page = parseInt(new URLSearchParams(location.search).get("page") || "1", 10);
  fetch("/api/page-" + page + ".json").then(function (r) { return r.json(); }).then(function (d) {
    var html = d.vehicles.map(function (v) {
      return '<article class="vehicle-card" data-vin="' + v.vin + '" data-year="' + v.year +
        '" data-make="' + v.make + '" data-model="' + v.model + '" data-saleprice="' + v.price +
        '"><img src="' + v.photo + '"><h2>' + v.year + " " + v.make + " " + v.model +
        "</h2></article>";
    }).join("");
    if (d.page < d.pages)
      html += '<a rel="next" href="/inventory/?page=' + (d.page + 1) + '">Next</a>';
    document.getElementById("app").innerHTML = html;
  });
})();"""

RUN = """
import json, sys
from scrapy.crawler import CrawlerProcess
from scrapy.utils.project import get_project_settings
from spiders import javascript

class Unblocked(javascript.Spider):
    @classmethod
    def update_settings(cls, settings):
        super().update_settings(settings)
        settings.set("PLAYWRIGHT_ABORT_REQUEST", None, priority="spider")

settings = get_project_settings()
settings.set("LOG_LEVEL", "WARNING")
settings.set("AUTOTHROTTLE_ENABLED", False)
settings.set("ITEM_PIPELINES", {})
process = CrawlerProcess(settings)
spider = javascript.Spider if sys.argv[1] == "blocked" else Unblocked
crawler = process.create_crawler(spider)
items = []
def scraped(item, **kw):
    items.append(item.vin)
from scrapy import signals
crawler.signals.connect(scraped, signal=signals.item_scraped)
# every result page is known up front, so pages render side by side (up to the page bounds)
pages = [sys.argv[2]] + [sys.argv[2] + "?page=%d" % n for n in range(2, int(sys.argv[3]) + 1)]
process.crawl(crawler, url=pages[0], dealer_settings={"listing_urls": pages[1:]})
process.start()
print(json.dumps({"pages": crawler.stats.get_value("playwright/page_count", 0),
                  "vehicles": len(set(items)),
                  "crawl_seconds": crawler.stats.get_value("elapsed_time_seconds")}))
"""


def png(rng: random.Random, width: int = 256, height: int = 256) -> bytes:
    rows = b"".join(b"\x00" + rng.randbytes(width * 3) for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0,
                                                              0, 0))
            + chunk(b"IDAT", zlib.compress(rows, 1)) + chunk(b"IEND", b""))


def generate(root: Path, pages: int, cards: int, seed: int) -> None:
    rng = random.Random(seed)
    for sub in ("inventory", "api", "static", "img"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "robots.txt").write_text("User-agent: *\nDisallow: /admin/\n")
    (root / "inventory" / "index.html").write_text(SHELL)
    for n in range(2, pages + 1):
        (root / f"inventory__page-{n}.html").write_text(SHELL)
    (root / "static" / "app.js").write_text(APP)
    (root / "static" / "bench.woff2").write_bytes(b"wOF2" + rng.randbytes(120_000))
    (root / "static" / "lot-tour.mp4").write_bytes(rng.randbytes(1_500_000))
    alphabet = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"
    for n in range(1, pages + 1):
        vehicles = []
        for i in range(cards):
            draft = "1HGCV1F3" + "0" + "N" + rng.choice("ABC") + "".join(
                rng.choice(alphabet) for _ in range(6))
            vin = draft[:8] + check_digit(draft) + draft[9:]
            photo = f"/img/{n}-{i}.png"
            (root / photo.lstrip("/")).write_bytes(png(rng))
            vehicles.append({"vin": vin, "year": 2022, "make": "Honda", "model": "Accord",
                             "price": rng.randrange(18_000, 32_000), "photo": photo})
        (root / "api" / f"page-{n}.json").write_text(json.dumps(
            {"page": n, "pages": pages, "vehicles": vehicles}))


class TreeRSS:
    """Peak summed RSS of a process and its children (Chromium), sampled every 100 ms."""

    def __init__(self, pid: int):
        self.peak, self.pid, self._stop = 0, pid, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                root = psutil.Process(self.pid)
                procs = [root, *root.children(recursive=True)]
                self.peak = max(self.peak, sum(p.memory_info().rss for p in procs
                                               if p.is_running()))
            except psutil.Error:
                pass
            time.sleep(0.1)

    def stop(self):
        self._stop.set()
        self._thread.join()


def crawl(mode: str, server, url: str, pages: int) -> dict:
    hits = server.RequestHandlerClass.hits
    hits.clear()
    t0 = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-c", RUN, mode, url, str(pages)], cwd=ROOT,
                             env=child_env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    rss = TreeRSS(child.pid)
    out, err = child.communicate(timeout=1800)
    rss.stop()
    elapsed = time.perf_counter() - t0
    if child.returncode:
        raise SystemExit(f"{mode} crawl failed:\n{err[-3000:]}")
    result = json.loads(out.strip().splitlines()[-1])
    served = sum(hits.values())
    heavy = sum(n for path, n in hits.items() if path.startswith(("/img/", "/static/bench",
                                                                   "/static/lot")))
    result.update(seconds=elapsed, requests=served, heavy_requests=heavy,
                  peak_rss_mb=rss.peak / 2**20)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pages", type=int, default=20)
    ap.add_argument("--cards", type=int, default=24)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    os.environ.setdefault("FORECOURT_ALLOW_PRIVATE_HOSTS", '["127.0.0.1"]')
    with tempfile.TemporaryDirectory(prefix="forecourt-bench-js-") as tmp:
        site = Path(tmp)
        generate(site, args.pages, args.cards, args.seed)
        size = {p: p.stat().st_size for p in site.rglob("*") if p.is_file()}
        server = fixture_server.serve(site)
        try:
            url = fixture_server.base_url(server) + "/inventory/"
            results = {mode: crawl(mode, server, url, args.pages)
                       for mode in ("unblocked", "blocked")}
        finally:
            server.shutdown()
            server.server_close()
    heavy_bytes = sum(n for p, n in size.items() if p.suffix in (".png", ".woff2", ".mp4"))
    print(f"site: {args.pages} JavaScript-rendered result pages x {args.cards} cards "
          f"(seed {args.seed}); images, font and video {heavy_bytes / 2**20:.1f} MB in all")
    for mode, r in results.items():
        ppm = r["pages"] / r["crawl_seconds"] * 60
        r["ppm"] = ppm
        print(f"{mode:9s}: {r['pages']:3d} pages {r['vehicles']:5d} vehicles "
              f"{r['crawl_seconds']:6.1f} s crawling ({r['seconds']:.1f} s with process start) "
              f"{ppm:7.1f} pages/min  {r['requests']:5d} requests served "
              f"({r['heavy_requests']} images/fonts/media)  peak RSS {r['peak_rss_mb']:.0f} MB")
    print(f"ratio blocked / unblocked pages per minute: "
          f"{results['blocked']['ppm'] / results['unblocked']['ppm']:.2f}")


if __name__ == "__main__":
    main()
