"""Run `touchpoint run` as a real subprocess against a test broker."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from processor import processes
from processor.kafka.embedded import free_port
from tests.support.ready import wait_ready


class WorkerProcess:
    """A worker subprocess with its own data dir, web port and log file."""

    def __init__(
        self,
        bootstrap: str,
        workdir: Path,
        *,
        command: list[str] | None = None,
        cwd: Path | None = None,
        base_env: dict[str, str] | None = None,
        **env: str,
    ) -> None:
        self.bootstrap = bootstrap
        self.workdir = workdir
        #: `touchpoint run` of this checkout unless another one (an installed wheel's) is given.
        self.command = command or [sys.executable, "-m", "processor.cli", "run"]
        self.cwd = cwd
        self.web_port = free_port()
        self.log_path = workdir / f"worker-{self.web_port}.log"
        self.env = {
            **(os.environ if base_env is None else base_env),
            "TOUCHPOINT_KAFKA_BOOTSTRAP": bootstrap,
            "TOUCHPOINT_DATA_DIR": str(workdir / "data"),
            "TOUCHPOINT_WEB_PORT": str(self.web_port),
            # A short rebalance timeout: the embedded broker waits it out on every join.
            "TOUCHPOINT_REBALANCE_TIMEOUT_S": "3",
            "TOUCHPOINT_SESSION_TIMEOUT_S": "10",
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, path: str) -> str:
        """A URL on the worker's web server."""
        return f"http://127.0.0.1:{self.web_port}{path}"

    def start(self, ready_timeout_s: float = 90.0) -> None:
        """Start the worker and wait until /ready answers 200."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.command,
            cwd=self.cwd,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        if wait_ready(
            self.proc,
            self.url("/ready"),
            ready_timeout_s,
            lambda code: f"worker exited with {code}:\n{self.log_tail()}",
        ):
            return
        self.stop()
        raise RuntimeError(f"worker not ready in {ready_timeout_s} s:\n{self.log_tail()}")

    def metrics(self) -> str:
        """The worker's /metrics text."""
        with urllib.request.urlopen(self.url("/metrics"), timeout=5) as r:
            return r.read().decode()

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """SIGTERM, wait, SIGKILL if needed; returns the exit code."""
        proc, self.proc = self.proc, None
        return processes.stop(proc, timeout_s)

    def log_tail(self, lines: int = 60) -> str:
        """The end of the worker's log, for failure messages."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> WorkerProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def metric_values(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Samples of one metric from Prometheus text, keyed by their sorted label pairs."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[tuple[tuple[str, str], ...], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                out[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def eventually(what: str, check: Callable[[], str | None], timeout_s: float) -> None:
    """Poll `check` (None means done, else why not yet) until done or the timeout."""
    deadline = time.monotonic() + timeout_s
    why: str | None = "never checked"
    while time.monotonic() < deadline:
        why = check()
        if why is None:
            return
        time.sleep(0.5)
    raise AssertionError(f"{what}: {why}")
