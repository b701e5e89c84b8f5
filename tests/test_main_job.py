"""The README's main-job command, run from a fresh clone on the embedded servers."""

from __future__ import annotations

import os
import random
import re
import socket
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.integration


def _free_ports(count: int) -> int:
    """The first of `count` consecutive free ports (the demo serves one site per port), below
    the kernel's ephemeral range: the demo binds them minutes later (after installing), and a
    port from the ephemeral range was meanwhile taken by some test's outgoing connection."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0]) \
        if Path("/proc/sys/net/ipv4/ip_local_port_range").exists() else 32768
    rng = random.Random()
    for _ in range(200):
        first = rng.randrange(max(1024, low - 12000), low - count)
        try:
            for port in range(first, first + count):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
    raise RuntimeError("no free ports")


def _readme_main_command() -> str:
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"^(\./dev demo)\b", readme, re.M)
    assert match, "README must give the main-job command"
    return match.group(1)


def _row(output: str, dealer: str) -> list[str]:
    for line in output.splitlines():
        cells = [c.strip() for c in line.split("│")]
        if len(cells) > 3 and cells[1] == dealer:
            return cells[1:-1]
    raise AssertionError(f"no row for {dealer} in:\n{output}")


def test_readme_main_job_from_a_fresh_clone_on_embedded_servers(tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("FORECOURT_", "DATABASE_URL", "REDIS_URL", "PYTEST",
                                "VIRTUAL_ENV"))}
    env["FORECOURT_DEMO_PORT"] = str(_free_ports(3))
    command = _readme_main_command()
    try:
        first = subprocess.run(command, shell=True, cwd=clone, env=env, capture_output=True,
                               text=True, timeout=900)
        assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
        assert (clone / ".forecourt" / "postgres").is_dir(), "embedded PostgreSQL not used"
        crawl = _row(first.stdout, "maple-ridge-motors")
        # dealer, job, kind, state, items, added, changed, unchanged, relisted, removed,
        # rejected, verdict
        assert crawl[2:6] == ["crawl", "succeeded", "11", "10"], crawl
        assert _row(first.stdout, "larkspur-valley-honda")[2:6] == ["crawl", "succeeded", "21",
                                                                   "20"]
        assert _row(first.stdout, "cedar-point-auto")[2:6] == ["crawl", "succeeded", "15", "15"]
        feed = _row(first.stdout, "harbor-city-auto")
        assert feed[2:6] == ["feed", "succeeded", "7", "6"], feed
        assert feed[10] == "1"
        stored = first.stdout.split("Stored", 1)[1]
        assert _row(stored, "maple-ridge-motors")[1] == "10"
        assert _row(stored, "harbor-city-auto")[1:4] == ["6", "0", "1"]

        second = subprocess.run(command, shell=True, cwd=clone, env=env, capture_output=True,
                                text=True, timeout=600)
        assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
        assert "no changes since the last run" in second.stdout
        crawl = _row(second.stdout, "maple-ridge-motors")
        assert crawl[5:10] == ["0", "0", "10", "0", "0"], crawl
    finally:
        subprocess.run([str(clone / ".venv" / "bin" / "forecourt"), "db", "stop"], cwd=clone,
                       env=env, capture_output=True, timeout=120)
