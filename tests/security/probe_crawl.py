"""A bare Scrapy crawl with forecourt's settings, for the outbound-safety tests.

`python tests/security/probe_crawl.py '{"urls": [...], "settings": {...}}'` fetches each URL
with a spider that has no allowed_domains (so only netguard decides where it may go) and
prints one JSON line: the responses, the failures and the netguard stats.
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

    args = json.loads(sys.argv[1])
    result: dict = {"responses": [], "failures": [], "problems": []}

    class Probe(scrapy.Spider):
        name = "probe"
        custom_settings = {"ROBOTSTXT_OBEY": False, "RETRY_ENABLED": False}

        def __init__(self, **kw):
            super().__init__(**kw)
            self.problems = result["problems"]

        async def start(self):
            for url in args["urls"]:
                yield scrapy.Request(url, callback=self.ok, errback=self.failed,
                                     dont_filter=True)

        def ok(self, response):
            result["responses"].append({"url": response.url, "status": response.status,
                                        "redirects": response.meta.get("redirect_urls", [])})

        def failed(self, failure):
            result["failures"].append({"url": failure.request.url,
                                       "error": type(failure.value).__name__,
                                       "message": str(failure.value)})

    settings = get_project_settings()
    settings.set("LOG_LEVEL", "WARNING")
    for key, value in (args.get("settings") or {}).items():
        settings.set(key, value, priority="cmdline")
    process = CrawlerProcess(settings)
    crawler = process.create_crawler(Probe)
    process.crawl(crawler)
    process.start()
    result["refused"] = crawler.stats.get_value("forecourt/netguard/refused", 0)
    print("PROBE " + json.dumps(result))


if __name__ == "__main__":
    main()
