"""A bare Scrapy crawl with forecourt's settings, for the outbound-safety tests.

`python tests/security/probe_crawl.py '[{"urls": [...], "settings": {...}}, ...]'` fetches each URL
with a spider that has no allowed_domains (so only netguard decides where it may go) and
prints one JSON line: per run, the responses, the failures and the netguard stats.
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("SCRAPY_SETTINGS_MODULE", "crawler.settings")


def main() -> None:
    import scrapy
    from scrapy.crawler import CrawlerProcess
    from scrapy.utils.project import get_project_settings

    runs = json.loads(sys.argv[1])
    results = []
    settings = get_project_settings()
    settings.set("LOG_LEVEL", "WARNING")
    process = CrawlerProcess(settings)
    for args in runs:
        result: dict = {"responses": [], "failures": [], "problems": []}
        # each run its own settings (as custom_settings), all in one reactor
        crawler = process.create_crawler(_probe(scrapy, args["urls"], result,
                                                args.get("settings") or {}))
        process.crawl(crawler)
        results.append((crawler, result))
    process.start()
    for crawler, result in results:
        result["refused"] = crawler.stats.get_value("forecourt/netguard/refused", 0)
    print("PROBE " + json.dumps([r for _, r in results]))


def _probe(scrapy, urls, result, overrides):
    class Probe(scrapy.Spider):
        name = "probe"
        custom_settings = {"ROBOTSTXT_OBEY": False, "RETRY_ENABLED": False, **overrides}

        def __init__(self, **kw):
            super().__init__(**kw)
            self.problems = result["problems"]

        async def start(self):
            for url in urls:
                yield scrapy.Request(url, callback=self.ok, errback=self.failed,
                                     dont_filter=True)

        def ok(self, response):
            result["responses"].append({"url": response.url, "status": response.status,
                                        "redirects": response.meta.get("redirect_urls", [])})

        def failed(self, failure):
            result["failures"].append({"url": failure.request.url,
                                       "error": type(failure.value).__name__,
                                       "message": str(failure.value)})

    return Probe


if __name__ == "__main__":
    main()
