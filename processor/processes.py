"""Child processes: tie them to their parent's life, and stop them gently, then firmly."""

from __future__ import annotations

import contextlib
import ctypes
import signal
import subprocess
import sys
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: the kernel sends SIGTERM to the child when the
    # process that started it dies, even by SIGKILL, so no child is ever orphaned.
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


#: `preexec_fn` for `subprocess.Popen` (Linux only; elsewhere nothing is tied).
die_with_parent: Callable[[], None] | None = _die_with_parent if sys.platform == "linux" else None


def stop(
    proc: subprocess.Popen[bytes] | None,
    timeout_s: float,
    *,
    on_kill: Callable[[], None] | None = None,
) -> int | None:
    """SIGTERM, wait up to `timeout_s`, then SIGKILL; returns the exit code (None: no process)."""
    if proc is None:
        return None
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            if on_kill is not None:
                on_kill()
            proc.kill()
            proc.wait()
    return proc.returncode
