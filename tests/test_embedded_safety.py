"""The embedded servers' files as an operator's machine leaves them: stale after a kill -9 or
a reboot, or another user's. None of these tests starts a server."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from crawler import embedded
from crawler.embedded import files
from crawler.errors import ConfigError

NOBODY = 65534


@pytest.fixture
def bystander():
    """A live process that is no server of ours, as a PID comes round again after a reboot."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    yield proc
    proc.kill()
    proc.wait()


def test_db_stop_never_signals_the_processes_stale_pid_files_name(tmp_path, bystander):
    """After a kill -9 or a reboot, redis.pid and postmaster.pid may name a process that has
    nothing to do with forecourt: `db stop` sent SIGTERM to whatever had the PID in redis.pid
    (and ran pg_ctl stop on the one in postmaster.pid), saying it stopped the servers."""
    (tmp_path / "redis").mkdir()
    (tmp_path / "redis" / "redis.pid").write_text(f"{bystander.pid}\n")
    pgdata = tmp_path / "postgres"
    pgdata.mkdir(mode=0o700)
    (pgdata / "PG_VERSION").write_text("16\n")
    (pgdata / "postmaster.pid").write_text(
        f"{bystander.pid}\n{pgdata}\n1700000000\n5432\n{pgdata}\n\n  1234 5678\nready\n")
    assert embedded.stop(tmp_path) == []
    assert psutil.Process(bystander.pid).status() != psutil.STATUS_ZOMBIE
    assert bystander.poll() is None
    assert embedded.status(tmp_path) == {"PostgreSQL": None, "Redis": None}


def test_a_half_made_cluster_is_one_clear_error(tmp_path):
    """A first start killed during initdb (older forecourt initialised in place) left files
    without PG_VERSION; every start after failed with initdb's traceback."""
    (tmp_path / "postgres").mkdir()
    (tmp_path / "postgres" / "global").mkdir()
    with pytest.raises(ConfigError) as err:
        embedded.postgres_url(tmp_path)
    assert "is not a PostgreSQL data directory" in str(err.value)
    assert f"remove {tmp_path / 'postgres'}" in err.value.hint


def test_another_users_data_directory_is_refused_not_taken_over(tmp_path):
    """As root, starting on a data directory another user's embedded servers own chowned
    their cluster to `pgserver` (breaking it for them) and went on; their Redis files would
    have become root's. Now one line says whose it is. (Only root can give a directory to
    another user; run as anyone else, the same check is shown refusing root's own `/`.)"""
    if os.geteuid() != 0:
        with pytest.raises(ConfigError, match="belongs to root") as err:
            files.owned_by(Path("/"), os.geteuid(), "the embedded Redis's data")
        assert "FORECOURT_DATA_DIR" in err.value.hint
        return
    for name in ("postgres", "redis"):
        (tmp_path / name).mkdir(mode=0o700)
        os.chown(tmp_path / name, NOBODY, NOBODY)
    (tmp_path / "postgres" / "PG_VERSION").write_text("16\n")
    for start in (embedded.postgres_url, embedded.redis_url):
        with pytest.raises(ConfigError) as err:
            start(tmp_path)
        assert "belongs to nobody" in str(err.value), str(err.value)
        assert "FORECOURT_DATA_DIR" in err.value.hint
    assert {(tmp_path / n).stat().st_uid for n in ("postgres", "redis")} == {NOBODY}


def test_a_socket_path_too_long_for_unix_sockets_moves_to_a_short_private_directory(tmp_path):
    """A data directory deep enough that `<dir>/postgres/.s.PGSQL.5432` passes 107 bytes left
    PostgreSQL unable to start and Redis bound to a cut path no client found (one more
    orphaned redis-server per start)."""
    shallow = tmp_path / "short"
    assert files.socket_dir(shallow, tmp_path, "redis", "redis.sock", os.geteuid()) == shallow
    deep = tmp_path / ("d" * max(1, 120 - len(str(tmp_path))))
    short = files.short_socket_dir(deep, "test")
    try:
        chosen = files.socket_dir(deep / "redis", deep, "test", "redis.sock", os.geteuid())
        assert chosen == short and files.fits(chosen / "redis.sock")
        assert chosen.stat().st_mode & 0o777 == 0o700
        # the same directory for every process; a stranger's directory there is refused
        assert files.socket_dir(deep / "redis", deep, "test", "redis.sock",
                                os.geteuid()) == chosen
        short.chmod(0o777)
        with pytest.raises(ConfigError, match="is not a private directory"):
            files.socket_dir(deep / "redis", deep, "test", "redis.sock", os.geteuid())
    finally:
        shutil.rmtree(short, ignore_errors=True)
