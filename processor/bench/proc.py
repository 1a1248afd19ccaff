"""CPU time and memory of a process, from /proc (Linux)."""

from __future__ import annotations

import os
from dataclasses import dataclass

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass(frozen=True)
class Usage:
    """A process's CPU seconds so far (user + system, all threads) and peak resident memory."""

    cpu_s: float
    peak_rss_bytes: int


def usage(pid: int) -> Usage | None:
    """The process's usage now; None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
        with open(f"/proc/{pid}/status", "rb") as f:
            status = f.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces; the fields after it are space separated.
    fields = stat[stat.rindex(b")") + 2 :].split()
    cpu = (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime
    peak = 0
    for line in status.splitlines():
        if line.startswith(b"VmHWM:"):
            peak = int(line.split()[1]) * 1024
    return Usage(cpu, peak)
