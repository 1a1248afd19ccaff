"""Waiting for a test subprocess's HTTP readiness endpoint."""

from __future__ import annotations

import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable


def wait_ready(
    proc: subprocess.Popen[bytes],
    url: str,
    timeout_s: float,
    exited: Callable[[int], str],
    interval_s: float = 0.25,
) -> bool:
    """Poll `url` until it answers 200 (True) or `timeout_s` passes (False).

    Raises RuntimeError with `exited(returncode)` as its message if the process ends first.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(exited(proc.returncode))
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(interval_s)
    return False
