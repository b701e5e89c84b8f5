"""Where the embedded servers keep their files, and the checks that keep a data directory to
the one user whose servers live in it.

Every process on the machine finds the servers from the data directory alone, so each choice
here (lock, socket) is a pure function of its path.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import pwd
import stat
from contextlib import contextmanager
from pathlib import Path

from crawler.errors import ConfigError

# sockaddr_un.sun_path holds 108 bytes with its terminating NUL. PostgreSQL refuses a longer
# socket path; Redis silently binds a cut one that no client finds.
SOCKET_PATH_MAX = 107
# Sockets of a data directory too deep for that go to a short directory of their own here.
SHORT_SOCKET_ROOT = Path("/tmp")

OTHER_USER_HINT = "run forecourt as that user, or set FORECOURT_DATA_DIR to a directory of your own"


def resolved(data_dir: Path) -> Path:
    """The data directory as every process names it (absolute, symlinks resolved), so a
    relative FORECOURT_DATA_DIR or a symlink finds the same servers."""
    return Path(data_dir).expanduser().resolve()


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def writable_dir(data_dir: Path) -> None:
    """Create the data directory, or say in one line why this user cannot work in it."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # not allowed, read-only, or a file in the way
        reason = "it is a file, not a directory" if isinstance(exc, FileExistsError) \
            else (exc.strerror or type(exc).__name__).lower()
        raise ConfigError(f"cannot create the data directory {data_dir}: {reason}",
                          hint="set FORECOURT_DATA_DIR to a directory you can write") from exc
    if not os.access(data_dir, os.W_OK | os.X_OK):
        raise ConfigError(
            f"the data directory {data_dir} is not writable by {user_name(os.geteuid())} "
            f"(it belongs to {user_name(data_dir.stat().st_uid)})", hint=OTHER_USER_HINT)


def owned_by(path: Path, uid: int, what: str) -> None:
    """Refuse a server directory another user's servers own: starting over it would take it
    over (chown) or leave files its owner cannot read, breaking their setup."""
    try:
        owner = path.lstat().st_uid
    except FileNotFoundError:
        return
    if owner != uid:
        raise ConfigError(f"{what} in {path} belongs to {user_name(owner)}, not "
                          f"{user_name(uid)}", hint=OTHER_USER_HINT)


@contextmanager
def locked(data_dir: Path, name: str):
    """Hold `<data dir>/<name>.lock` so processes starting at once start a server once.
    The kernel drops the lock when its holder dies, even by kill -9."""
    writable_dir(data_dir)
    path = data_dir / f"{name}.lock"
    try:
        fh = open(path, "a")
    except PermissionError as exc:
        raise ConfigError(f"cannot open {path}: permission denied (it belongs to "
                          f"{user_name(path.stat().st_uid)})", hint=OTHER_USER_HINT) from exc
    with fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def fits(socket_path: Path) -> bool:
    return len(os.fsencode(socket_path)) <= SOCKET_PATH_MAX


def short_socket_dir(data_dir: Path, server: str) -> Path:
    """The directory for a server's socket when the data directory is too deep for one:
    `/tmp/forecourt-<hash of the data directory>-<server>`, the same for every process."""
    digest = hashlib.sha256(os.fsencode(data_dir)).hexdigest()[:16]
    return SHORT_SOCKET_ROOT / f"forecourt-{digest}-{server}"


def socket_dir(preferred: Path, data_dir: Path, server: str, socket_name: str,
               uid: int) -> Path:
    """`preferred` (in the data directory) when the socket's path fits in a Unix socket
    address, else a short directory made for it, owned by `uid` (the server's user) and
    private, refused when someone else made it first."""
    if fits(preferred / socket_name):
        return preferred
    short = short_socket_dir(data_dir, server)
    try:
        short.mkdir(mode=0o700)
        if os.geteuid() != uid:
            os.chown(short, uid, pwd.getpwuid(uid).pw_gid)
    except FileExistsError:
        pass
    info = short.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != uid or info.st_mode & 0o077:
        raise ConfigError(
            f"{short}, where the data directory's {server} socket goes (its own path is too "
            f"long for a Unix socket), is not a private directory of {user_name(uid)}'s",
            hint=f"remove {short}, or set FORECOURT_DATA_DIR to a shorter path")
    return short
