"""What a contestant process counts and reports; only the standard library and orjson, so the
Quix Streams contestant can use it in its own environment (processor/bench/quix.py)."""

from __future__ import annotations

import argparse
import os
import resource
import time
from pathlib import Path

import orjson


class Progress:
    """Messages handled since the first one, and the process's CPU and memory over them."""

    def __init__(self, result: Path) -> None:
        self.result = result
        self.n = 0
        self.first_at = 0.0
        self._cpu0 = 0.0

    def one(self) -> None:
        """Count one message (the first starts the clocks)."""
        if not self.n:
            self.first_at, self._cpu0 = time.time(), time.process_time()
        self.n += 1

    def seconds(self) -> float:
        """Seconds since the first message."""
        return time.time() - self.first_at if self.n else 0.0

    def finish(self) -> None:
        """Write the result as JSON and end the process at once (a measurement, not a service:
        no graceful shutdown to wait for)."""
        result = {
            "messages": self.n,
            "first_at": self.first_at,
            "last_at": time.time(),
            "cpu_s": time.process_time() - self._cpu0,
            "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        }
        self.result.write_bytes(orjson.dumps(result))
        os._exit(0)


def arguments(description: str | None) -> argparse.ArgumentParser:
    """The command line every bounded contestant takes (processor/bench/main.py `_bounded`)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--run", required=True)
    p.add_argument("--datadir", required=True)
    p.add_argument("--expect", type=int, required=True)
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--result", type=Path, required=True, help="where to write the result")
    return p
