"""Child processes that die with their parent (Linux's PR_SET_PDEATHSIG).

A worker killed with -9 (by an operator, or the OOM killer, which picks one process, not
its group) must not leave its children behind: a crawl child would go on writing beside the
attempt that replaces it, and a feed's stage workers would wait on their task queue for
ever, each holding its imports and the VIN data. Elsewhere than Linux this does nothing;
the reaper and the job's ownership checks remain.
"""

from __future__ import annotations

import os
import signal


def _load_prctl():
    try:
        import ctypes

        return ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _load_prctl()  # loaded before any fork: nothing is imported in a forked child
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In a child before exec (a subprocess's preexec_fn): be killed when the thread that
    started it exits, which for the callers here is when their process dies."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL)


def die_with_spawner(parent_pid: int | None) -> None:
    """In a process that is already running (a multiprocessing child's initializer): the
    same, and exit at once if `parent_pid` died before this was in place."""
    die_with_parent()
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(1)
