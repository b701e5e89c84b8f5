"""The embedded PostgreSQL: the `pgserver` wheel's binaries, started and stopped here.

pgserver's own start-up is not used, for what it gets wrong on an operator's machine: it
hands the socket directory to the server unquoted (a data directory with a space in its path
never starts), falls back for a path too long for a Unix socket to a directory inside the
same deep path, believes any live process with the PID of a stale postmaster.pid is the
server (after a reboot or a kill -9 the server may never start again, and a stop signals that
other process), and as root takes over a data directory another user's server owns.

The layout is pgserver's, so data directories it made keep working: the cluster in
`<data dir>/postgres`, initialised with trust authentication for the `postgres` role, the
server on a Unix socket only (no TCP port to conflict), running as the `pgserver` user when
forecourt runs as root (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shlex
import shutil
import stat
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import psutil
import psycopg

from crawler.embedded import files
from crawler.errors import ConfigError

DATABASE = "forecourt"
USER_AS_ROOT = "pgserver"  # pgserver's choice, so the clusters it made stay usable
SOCKET = ".s.PGSQL.5432"
START_TIMEOUT_S = 120


def _bin(name: str) -> str:
    spec = importlib.util.find_spec("pgserver")
    if spec is None or not spec.submodule_search_locations:  # pragma: no cover - pinned
        raise ConfigError("the embedded PostgreSQL needs the pgserver package",
                          hint="install forecourt's dependencies or set DATABASE_URL")
    return str(Path(spec.submodule_search_locations[0]) / "pginstall" / "bin" / name)


def server_user() -> pwd.struct_passwd:
    """Who the server runs as: this user, or `pgserver` (created if missing) for root."""
    if os.geteuid() != 0:
        return pwd.getpwuid(os.geteuid())
    try:
        return pwd.getpwnam(USER_AS_ROOT)
    except KeyError:
        pass
    # a process starting at the same moment may add it first: then useradd fails, harmlessly
    added = subprocess.run(["useradd", "--system", "--no-create-home", "--shell",
                            "/usr/sbin/nologin", USER_AS_ROOT], capture_output=True, text=True)
    try:
        return pwd.getpwnam(USER_AS_ROOT)
    except KeyError:
        raise ConfigError(f"cannot add the user {USER_AS_ROOT} the embedded PostgreSQL runs as "
                          f"under root: {_last_line(added.stderr)}",
                          hint="run forecourt as another user, or set DATABASE_URL") from None


def _as_root_let_reach(user: pwd.struct_passwd, *paths: Path) -> None:
    """As root the server runs as another user, who must be able to walk down to its data
    and binaries: give every directory above them the search (x) bit for others, and the
    binaries read and execute, changing only what lacks them."""
    if os.geteuid() != 0 or user.pw_uid == 0:
        return
    for path in paths:
        for parent in path.parents:
            mode = parent.stat().st_mode
            if not mode & stat.S_IXOTH:
                parent.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)
    install = Path(_bin("postgres")).parent.parent
    if not os.stat(_bin("postgres")).st_mode & stat.S_IXOTH:
        for path in [install, *install.rglob("*")]:
            mode = path.stat().st_mode
            extra = stat.S_IROTH | (stat.S_IXOTH if path.is_dir() or mode & stat.S_IXUSR else 0)
            path.chmod(stat.S_IMODE(mode) | extra)


def _run(args: list[str], user: pwd.struct_passwd, timeout: float) -> tuple[int, str]:
    """Run a PostgreSQL program as the server's user; its exit status and output. Output goes
    through a file: a pipe could be held open by the server pg_ctl leaves running."""
    as_other = user.pw_uid != os.geteuid()
    with tempfile.TemporaryFile("w+") as out:
        done = subprocess.run(
            args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, text=True,
            timeout=timeout, user=user.pw_uid if as_other else None,
            group=user.pw_gid if as_other else None, extra_groups=[] if as_other else None,
            cwd="/")
        out.seek(0)
        return done.returncode, out.read()


def postmaster(pgdata: Path) -> tuple[int, Path, str] | None:
    """(pid, socket directory, status) of the server running on `pgdata`, or None.

    postmaster.pid outlives a server killed with -9 or a machine that lost power; its PID may
    by then be another process's (after a reboot, or in a container, PIDs come round again).
    It counts only when that process is a postgres started on this very data directory."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
        pid = int(lines[0])
    except (FileNotFoundError, IndexError, ValueError):
        return None
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        cmd = proc.cmdline()
    except psutil.NoSuchProcess:
        return None
    except psutil.AccessDenied:  # cannot tell: let PostgreSQL itself decide
        cmd = None
    if cmd is not None and not (
            "-D" in cmd[:-1] and files.resolved(Path(cmd[cmd.index("-D") + 1])) == pgdata):
        return None
    socket_dir = Path(lines[4]) if len(lines) > 4 and lines[4] else pgdata
    status = lines[7].strip() if len(lines) > 7 else "starting"
    return pid, socket_dir, status


def _forget_stale(pgdata: Path, socket_dir: Path) -> None:
    """Remove the lock files of a server that is gone: PostgreSQL would refuse to start while
    one names a live process, whatever that process is."""
    (pgdata / "postmaster.pid").unlink(missing_ok=True)
    (socket_dir / f"{SOCKET}.lock").unlink(missing_ok=True)
    (socket_dir / SOCKET).unlink(missing_ok=True)


def _initdb(data_dir: Path, pgdata: Path, user: pwd.struct_passwd) -> None:
    """Initialise the cluster beside `pgdata` and move it into place when complete, so a
    first start killed half-way leaves no half-made cluster that never starts."""
    if (pgdata / "PG_VERSION").exists():
        return
    if pgdata.exists():
        if any(pgdata.iterdir()):
            raise ConfigError(f"{pgdata} is not a PostgreSQL data directory (a first start "
                              "interrupted by an older forecourt?)",
                              hint=f"remove {pgdata} if it holds nothing you need")
        pgdata.rmdir()
    for leftover in data_dir.glob("postgres.init-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    work = Path(tempfile.mkdtemp(prefix="postgres.init-", dir=data_dir))
    if user.pw_uid != os.geteuid():
        os.chown(work, user.pw_uid, user.pw_gid)
    _as_root_let_reach(user, work)
    status, output = _run([_bin("initdb"), "-D", str(work), "--auth=trust",
                           "--auth-local=trust", "--encoding=utf8", "-U", "postgres"],
                          user, timeout=300)
    if status != 0:
        shutil.rmtree(work, ignore_errors=True)
        raise ConfigError(f"initdb failed: {_last_line(output)}",
                          hint="set DATABASE_URL to use another PostgreSQL")
    work.rename(pgdata)


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no output"


def _start(data_dir: Path, pgdata: Path, user: pwd.struct_passwd) -> None:
    socket_dir = files.socket_dir(pgdata, data_dir, "postgres", SOCKET, user.pw_uid)
    _forget_stale(pgdata, socket_dir)
    _as_root_let_reach(user, pgdata, socket_dir)
    # pg_ctl hands -o to a shell: quote the socket directory (spaces, quotes)
    options = f"-h '' -k {shlex.quote(str(socket_dir))}"
    status, output = _run([_bin("pg_ctl"), "-D", str(pgdata), "-w", "-t", str(START_TIMEOUT_S),
                           "-l", str(pgdata / "log"), "-o", options, "start"],
                          user, timeout=START_TIMEOUT_S + 30)
    if status != 0 and postmaster(pgdata) is None:
        log = pgdata / "log"
        detail = _last_line(log.read_text(errors="replace")) if log.exists() else ""
        raise ConfigError(f"the embedded PostgreSQL did not start: "
                          f"{detail or _last_line(output)}",
                          hint=f"see {log}, or set DATABASE_URL to use another PostgreSQL")


def _ready(data_dir: Path, pgdata: Path, user: pwd.struct_passwd) -> Path:
    """Start the server unless one is running; wait until it accepts connections (one being
    started by a process killed half-way is waited for, not started twice). Returns its
    socket directory."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        running = postmaster(pgdata)
        if running is None:
            _start(data_dir, pgdata, user)
        elif running[2] == "ready":
            return running[1]
        elif time.monotonic() > deadline:
            raise ConfigError(f"the embedded PostgreSQL (pid {running[0]}) is still "
                              f"'{running[2]}'", hint=f"see {pgdata / 'log'}")
        else:
            time.sleep(0.1)


def url_for(socket_dir: Path, database: str) -> str:
    return f"postgresql://postgres@/{database}?host={quote(str(socket_dir), safe='/')}"


def url(data_dir: Path) -> str:
    """Start (or reuse) the embedded PostgreSQL in `data_dir`; a URL for forecourt's
    database in it, created if missing."""
    data_dir = files.resolved(data_dir)
    pgdata = data_dir / "postgres"
    user = server_user()
    with files.locked(data_dir, "postgres"):
        if (pgdata / "PG_VERSION").exists():
            files.owned_by(pgdata, user.pw_uid, "the embedded PostgreSQL's data")
        _initdb(data_dir, pgdata, user)
        socket_dir = _ready(data_dir, pgdata, user)
        try:
            with psycopg.connect(url_for(socket_dir, "postgres"), autocommit=True,
                                 connect_timeout=10) as conn:
                if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                    (DATABASE,)).fetchone():
                    conn.execute(f"CREATE DATABASE {DATABASE}")
        except psycopg.OperationalError as exc:
            raise ConfigError(f"the embedded PostgreSQL does not answer: "
                              f"{_last_line(str(exc))}", hint=f"see {pgdata / 'log'}") from exc
    return url_for(socket_dir, DATABASE)


def stop(data_dir: Path) -> bool:
    """Stop the embedded PostgreSQL if it runs (fast: clients are disconnected); whether it
    did."""
    data_dir = files.resolved(data_dir)
    pgdata = data_dir / "postgres"
    if postmaster(pgdata) is None:
        return False
    user = server_user()
    with files.locked(data_dir, "postgres"):
        files.owned_by(pgdata, user.pw_uid, "the embedded PostgreSQL's data")
        if postmaster(pgdata) is None:
            return False
        status, output = _run([_bin("pg_ctl"), "-D", str(pgdata), "-w", "-t", "120", "-m",
                               "fast", "stop"], user, timeout=150)
        if status != 0 and postmaster(pgdata) is not None:
            raise ConfigError(f"could not stop the embedded PostgreSQL: {_last_line(output)}",
                              hint=f"see {pgdata / 'log'}")
    return True
