"""Scrapy settings for every forecourt crawl. Values that vary come from crawler.config."""

from crawler import browser
from crawler.config import get_settings

_s = get_settings()

BOT_NAME = "forecourt"
# Spiders are chosen per dealer by spiders.registry (crawls run through crawler.crawl_process),
# not by name through Scrapy's spider loader.
SPIDER_MODULES: list[str] = []

USER_AGENT = _s.user_agent
ROBOTSTXT_OBEY = _s.obey_robots
CONCURRENT_REQUESTS = 16
CONCURRENT_REQUESTS_PER_DOMAIN = _s.concurrent_requests_per_domain
DOWNLOAD_DELAY = _s.download_delay
AUTOTHROTTLE_ENABLED = _s.autothrottle
AUTOTHROTTLE_START_DELAY = 0.25
AUTOTHROTTLE_MAX_DELAY = 30
AUTOTHROTTLE_TARGET_CONCURRENCY = 2.0
DOWNLOAD_TIMEOUT = 30
DOWNLOAD_MAXSIZE = _s.max_response_bytes
DOWNLOAD_WARNSIZE = 0
RETRY_ENABLED = True
RETRY_TIMES = 2
COOKIES_ENABLED = True
TELNETCONSOLE_ENABLED = False
LOG_LEVEL = _s.log_level
REQUEST_FINGERPRINTER_IMPLEMENTATION = "2.7"
TWISTED_REACTOR = "twisted.internet.asyncioreactor.AsyncioSelectorReactor"
FEED_EXPORT_ENCODING = "utf-8"

# Outbound safety: every request and every connection goes only to allowed addresses
# (crawler/netguard.py; FORECOURT_ALLOW_PRIVATE_HOSTS lists exceptions).
TWISTED_DNS_RESOLVER = "crawler.middlewares_security.NetGuardResolver"
DOWNLOADER_MIDDLEWARES = {
    "crawler.middlewares_security.NetGuardMiddleware": 40,
    "crawler.middlewares_security.DownloadFaultsMiddleware": 45,
    "scrapy.downloadermiddlewares.httpcompression.HttpCompressionMiddleware": None,
    "crawler.middlewares_security.HttpCompressionLimitMiddleware": 590,
    # a shared budget per platform backend, across every worker (crawler/ratelimit.py);
    # after robots.txt (100) so disallowed requests spend nothing
    "crawler.middlewares.PlatformRateLimitMiddleware": 120,
}

# Headless Chromium for the pages that need it (requests with meta playwright=True): the
# browser starts on the first such request, so a crawl that never renders never starts one;
# every other request goes through Scrapy's own HTTP handler (crawler/browser_handler.py).
DOWNLOAD_HANDLERS = {"http": "crawler.browser_handler.BrowserOnDemandHandler",
                     "https": "crawler.browser_handler.BrowserOnDemandHandler"}
PLAYWRIGHT_BROWSER_TYPE = "chromium"
PLAYWRIGHT_LAUNCH_OPTIONS = browser.launch_options()  # the system Chromium, --no-sandbox
PLAYWRIGHT_ABORT_REQUEST = "crawler.browser.should_abort_request"  # images, fonts, media
PLAYWRIGHT_MAX_CONTEXTS = _s.playwright_max_contexts
PLAYWRIGHT_MAX_PAGES_PER_CONTEXT = _s.playwright_max_pages_per_context
PLAYWRIGHT_DEFAULT_NAVIGATION_TIMEOUT = 30_000

# Every stage, in order; each also works directly on batches (see pipelines/).
ITEM_PIPELINES = {
    "pipelines.scrapy_stages.StorePipeline": 900,
}
