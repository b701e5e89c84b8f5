"""`forecourt api`: serve the HTTP API for the dealer UI."""

from __future__ import annotations

import os
import shutil

import typer

from crawler import preflight
from crawler.cli.common import database, err_console, say
from crawler.config import get_settings
from crawler.db import redis_url
from crawler.errors import InvalidInput


def register(app: typer.Typer) -> None:
    @app.command("api")
    def api(
        host: str | None = typer.Option(None, "--host", help="Address to bind "
                                        "(FORECOURT_API_HOST, default 127.0.0.1)."),
        port: int | None = typer.Option(None, "--port", help="Port to bind "
                                        "(FORECOURT_API_PORT, default 8080)."),
        workers: int | None = typer.Option(None, "--workers", min=1, help="Worker processes "
                                           "(FORECOURT_API_WORKERS, default 1)."),
        access_log: bool = typer.Option(False, "--access-log", help="Log every request."),
    ) -> None:
        """Serve the versioned JSON API (job status, triggers, inventory; docs at /v1/docs)."""
        import uvicorn

        settings = get_settings()
        host = host or settings.api_host
        port = settings.api_port if port is None else port
        workers = settings.api_workers if workers is None else workers
        if not 0 <= port <= 65535:
            raise InvalidInput(f"port {port} is out of range", hint="use 1-65535")
        with database():
            pass  # the schema is checked once here, not in every worker
        # Redis down: the API serves reads and answers triggers 503 (README); a Redis it
        # could never use (password, database number, TLS) is refused here.
        down = preflight.redis(redis_url(), unreachable_ok=True)
        if down:
            err_console.print(f"warning: {down}; serving without it: triggers answer 503 "
                              "until it is back (check REDIS_URL)", soft_wrap=True)
        if workers > 1:
            preflight.data_dir()
        preflight.listen(host, port)
        if workers > 1:
            # Worker processes share API latency metrics through files in this directory.
            metrics_dir = settings.data_dir / "api-metrics" / str(os.getpid())
            shutil.rmtree(metrics_dir, ignore_errors=True)
            metrics_dir.mkdir(parents=True)
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        say(f"forecourt API on http://{host}:{port}/v1 (OpenAPI: /v1/openapi.json, "
            f"docs: /v1/docs), {workers} worker(s); Ctrl-C stops it")
        try:
            uvicorn.run("jobs.api.app:create_app", factory=True, host=host, port=port,
                        workers=workers, access_log=access_log, server_header=False,
                        # unparsable requests answer 400 problem+json, not plain text
                        http="jobs.api.protocol:ProblemHttpTools",
                        # the client address (failed-authentication limit, access log) is
                        # taken from X-Forwarded-For only when these peers sent it
                        proxy_headers=bool(settings.forwarded_allow_ips),
                        forwarded_allow_ips=settings.forwarded_allow_ips or None,
                        log_config=None,  # forecourt's JSON logging, configured by the app
                        log_level=settings.log_level.lower(), timeout_graceful_shutdown=5)
        finally:
            if workers > 1:
                shutil.rmtree(metrics_dir, ignore_errors=True)
