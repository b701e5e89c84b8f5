"""A dealer whose stored platform has no spider: its crawl fails at once, permanently, with
the reason, instead of crashing its child and being retried until dead. And a crawl child
that does crash is reported by its exception, not by the traceback's header."""

from __future__ import annotations

import pytest

from crawler.crawl_runner import _last_error, run_crawl
from crawler.db import dealers as dealers_db
from crawler.db import jobs as jobs_db
from jobs import outcome

pytestmark = pytest.mark.integration


def test_a_crawl_of_a_platform_with_no_spider_fails_permanently_with_the_reason(db):
    # stored before `dealers add` checked platforms (or written by hand)
    dealer = dealers_db.create(db, slug="maple", name="Maple", website_url="https://maple.test/",
                               platform="nosuch")
    job, _ = jobs_db.create_or_get_active(db, dealer.id, "crawl", "operator")
    jobs_db.start(db, job.id, "test")
    job = run_crawl(job.id, time_limit_s=60)
    assert job.state == "failed"
    assert job.error.startswith("no spider for platform 'nosuch' (use one of: ")
    assert "generic" in job.error and "Traceback" not in job.error
    assert job.error_kind == "permanent"
    assert outcome.classify_settled(job) == outcome.PERMANENT  # not retried


LOG = """\
2024-05-01 10:00:00 [scrapy.core.engine] INFO: Spider opened
2024-05-01 10:00:01 [scrapy.core.scraper] ERROR: Spider error processing <GET https://x.test/>
Traceback (most recent call last):
  File "/app/spiders/generic.py", line 40, in parse
    raise ValueError("first")
ValueError: first
2024-05-01 10:00:02 [forecourt] INFO: still going
Traceback (most recent call last):
  File "/app/crawler/crawl_process.py", line 50, in main
    process.crawl(spider_for(platform), url=url)
  File "/app/spiders/registry.py", line 35, in spider_for
    raise InvalidInput(f"no spider for platform {name!r}",
crawler.errors.InvalidInput: no spider for platform 'nosuch'
"""


@pytest.mark.parametrize("log, expected", [
    (LOG, "crawler.errors.InvalidInput: no spider for platform 'nosuch'"),
    # chained: the exception that ended the process, not the one it was handling
    ("Traceback (most recent call last):\n  File \"a.py\", line 1, in <module>\n"
     "KeyError: 'url'\n\nDuring handling of the above exception, another exception "
     "occurred:\n\nTraceback (most recent call last):\n  File \"a.py\", line 3, in <module>\n"
     "    boom()\nRuntimeError\n", "RuntimeError"),
    # no traceback: the last error line, as before
    ("INFO: a\n2024 [scrapy] ERROR: Gave up retrying <GET https://x.test/>\nINFO: b\n",
     "2024 [scrapy] ERROR: Gave up retrying <GET https://x.test/>"),
    ("INFO: a\nINFO: last words\n", "INFO: last words"),
])
def test_the_error_of_a_crashed_crawl_is_the_exception_that_ended_it(tmp_path, log, expected):
    path = tmp_path / "job.log"
    path.write_text(log)
    assert _last_error(path) == expected
