"""`forecourt demo`: crawl and ingest the bundled fixture dealers, then show what was stored."""

from __future__ import annotations

import tomllib

import typer
from rich.table import Table

from crawler import fixture_server
from crawler.cli.common import console, database, say
from crawler.cli.crawl import crawl_now
from crawler.cli.ingest import ingest_now
from crawler.cli.render import summary_table
from crawler.config import PROJECT_ROOT, get_settings, reset_settings
from crawler.db import dealers as dealers_db
from crawler.errors import ConfigError, NotFound

DEMO_FILE = PROJECT_ROOT / "fixtures" / "demo.toml"


def _ensure_dealer(conn, spec: dict, website: str | None):
    fields = {"name": spec["name"], "website_url": website,
              "feed_url": str(PROJECT_ROOT / spec["feed"]) if spec.get("feed") else None,
              "platform": spec.get("platform")}
    try:
        dealer = dealers_db.get(conn, spec["slug"])
    except NotFound:
        return dealers_db.create(conn, slug=spec["slug"], **fields)
    return dealers_db.update(conn, dealer.id, **fields)


def stored_table(conn, slugs: list[str]) -> Table:
    table = Table(title="Stored")
    for col in ("dealer", "active vehicles", "removed", "rejects", "avg quality",
                "events"):
        table.add_column(col, justify="right" if col != "dealer" else "left")
    for row in dealers_db.stored_summary(conn, slugs):
        table.add_row(row["slug"], str(row["active"]), str(row["removed"]), str(row["rejects"]),
                      f"{row['avg_quality']:.0f}" if row["avg_quality"] is not None else "-",
                      str(row["events"]))
    return table


def _allow_loopback() -> None:
    """The demo's dealer sites are served on 127.0.0.1, which outbound safety refuses by
    default: allow exactly that address for this process and the crawls it starts."""
    import json
    import os

    allowed = set(get_settings().allow_private_hosts) | {"127.0.0.1"}
    os.environ["FORECOURT_ALLOW_PRIVATE_HOSTS"] = json.dumps(sorted(allowed))
    reset_settings()


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(workers: bool = typer.Option(
            False, "--workers", help="Run the same work through real `forecourt worker` and "
            "`forecourt scheduler` processes (crawls enqueued by the scheduler).")) -> None:
        """Crawl and ingest the bundled fixture dealers and print what was stored."""
        spec = tomllib.loads(DEMO_FILE.read_text())["dealers"]
        _allow_loopback()
        port_base = get_settings().demo_port
        servers = []
        try:
            with database() as conn:
                results = []
                for d in spec:
                    website = None
                    if d.get("site"):
                        try:
                            port = int(d.get("port", 0))
                            if port_base is not None and port:
                                port = port_base + len(servers)
                            server = fixture_server.serve(d["site"], port)
                        except OSError as exc:
                            raise ConfigError(
                                f"cannot serve fixture site on port {port}: {exc}",
                                hint="stop whatever uses that port, or set FORECOURT_DEMO_PORT "
                                     f"to the first of {sum(1 for x in spec if x.get('site'))}"
                                     " free ports in a row",
                            ) from exc
                        servers.append(server)
                        website = fixture_server.base_url(server) + d.get("path", "/")
                    _ensure_dealer(conn, d, website)
                if workers:
                    from crawler.cli.worker import run_with_workers

                    results = run_with_workers(
                        conn, [d["slug"] for d in spec if d.get("site")],
                        [(d["slug"], str(PROJECT_ROOT / d["feed"])) for d in spec
                         if d.get("feed")], allow_hosts=["127.0.0.1"])
                for d in ([] if workers else spec):
                    if d.get("site"):
                        results.append((d["slug"], crawl_now(conn, d["slug"], trigger="demo")))
                    if d.get("feed"):
                        results.append((d["slug"], ingest_now(conn, d["slug"],
                                                              str(PROJECT_ROOT / d["feed"]),
                                                              trigger="demo")))
                console.print(summary_table(results, title="Demo runs"))
                console.print(stored_table(conn, [d["slug"] for d in spec]))
                changes = sum(j.counters.get(k, 0) for _, j in results
                              for k in ("added", "changed", "removed", "relisted"))
                say("no changes since the last run" if changes == 0
                    else f"{changes} change(s) stored")
        finally:
            for server in servers:
                server.shutdown()
                server.server_close()
