"""The notice a dealer's webhook receives when a run is not healthy.

A JSON POST with the verdict, reasons and figures; a short timeout, a few attempts with
exponential backoff (tenacity), and the dealer's URL treated as untrusted (crawler.netguard:
no private addresses unless allowed). A webhook that cannot be reached is logged, never
fatal: the run's outcome is already recorded on its job.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from crawler import netguard
from crawler.config import get_settings
from crawler.errors import ForecourtError

log = logging.getLogger(__name__)


class WebhookFailed(Exception):
    """A webhook answered with a server error (worth another attempt)."""


def notice(dealer_slug: str, job_id: int, report: dict[str, Any]) -> dict[str, Any]:
    """The JSON body: what happened, why, and the figures the verdict rests on."""
    keep = ("verdict", "reasons", "state", "complete", "items", "valid", "rejected",
            "reject_rate", "error_rate", "block_rate", "baseline_count", "coverage",
            "usual_coverage", "removed", "settled")
    # a run that removed because its count settled at a new level is healthy, but is news
    event = "run.settled" if report.get("settled") else "run.unhealthy"
    return {"event": event, "dealership": dealer_slug, "job_id": job_id,
            "sent_at": dt.datetime.now(dt.UTC).isoformat(),
            **{k: report[k] for k in keep if k in report}}


def send(url: str, body: dict[str, Any]) -> bool:
    """POST the notice; True when the webhook accepted it. Never raises."""
    # Imported here, not with the module: every crawl process imports this module (through
    # pipelines.run), few send a notice, and httpx with its CLI's imports costs ~0.15 s.
    import httpx

    settings = get_settings()

    @retry(stop=stop_after_attempt(max(1, settings.webhook_attempts)),
           wait=wait_exponential(multiplier=settings.webhook_backoff_s, max=5),
           retry=retry_if_exception_type((httpx.TransportError, WebhookFailed)),
           reraise=True)
    def post(client: httpx.Client) -> None:
        response = client.post(url, json=body)
        if response.status_code >= 500 or response.status_code == 429:
            raise WebhookFailed(f"HTTP {response.status_code}")
        if response.status_code >= 400:
            raise ForecourtError(f"HTTP {response.status_code}")

    try:
        with netguard.safe_client(timeout=settings.webhook_timeout_s,
                                  follow_redirects=False) as client:
            post(client)
        return True
    except (httpx.HTTPError, WebhookFailed, ForecourtError, OSError) as exc:
        log.warning("webhook %s failed: %s", url, exc)
        return False
