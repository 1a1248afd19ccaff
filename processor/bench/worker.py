"""The processor as a contestant: `touchpoint run` worker processes, watched through /metrics."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from processor import processes
from processor.bench.proc import Usage, usage
from processor.kafka.embedded import free_port

#: Counters the benchmark follows, summed over their labels.
WATCHED = (
    "touchpoint_messages_consumed_total",
    "touchpoint_events_received_total",
    "touchpoint_events_processed_total",
    "touchpoint_deadletters_total",
    "touchpoint_duplicate_events_total",
    "touchpoint_processing_errors_total",
    "touchpoint_actions_total",
    "touchpoint_transitions_total",
    "touchpoint_timers_fired_total",
    "touchpoint_identity_merges_total",
)


def totals(text: str, names: tuple[str, ...] = WATCHED) -> dict[str, float]:
    """Each counter's sum over its labels, from Prometheus text (cheaper than a full parse)."""
    out = dict.fromkeys(names, 0.0)
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        name_end = line.find("{")
        if name_end < 0:
            name_end = line.find(" ")
        name = line[:name_end]
        if name in out:
            out[name] += float(line.rsplit(" ", 1)[1])
    return out


#: Where in a worker's data directory Faust keeps the tables (RocksDB): `v<app version>/tables`.
STORE = Path("v1", "tables")


@dataclass
class Worker:
    """One `touchpoint run` process with its own data dir, web port and log file."""

    bootstrap: str
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)
    web_port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0

    @property
    def log_path(self) -> Path:
        """Where the worker's output goes."""
        return self.workdir / f"worker-{self.web_port}.log"

    def start(self, *, fresh: bool = True) -> None:
        """Start the process (with an empty data dir when `fresh`); returns at once."""
        if fresh and (self.workdir / "data").exists():
            shutil.rmtree(self.workdir / "data")
        self._launch()

    def start_without_store(self) -> None:
        """Start the process with its local store deleted and the rest of its data directory
        (its places in the consumer groups) kept, as after a damaged store was removed."""
        store = self.workdir / "data" / STORE
        if not store.is_dir():
            raise FileNotFoundError(f"no local store at {store}")
        shutil.rmtree(store)
        self._launch()

    def _launch(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.web_port = free_port()
        env = {
            **os.environ,
            "TOUCHPOINT_KAFKA_BOOTSTRAP": self.bootstrap,
            "TOUCHPOINT_DATA_DIR": str(self.workdir / "data"),
            "TOUCHPOINT_WEB_HOST": "127.0.0.1",
            "TOUCHPOINT_WEB_PORT": str(self.web_port),
            # The embedded broker holds every group join for a part of this: keep start-up quick.
            "TOUCHPOINT_REBALANCE_TIMEOUT_S": "3",
            **self.env,
        }
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "processor.cli", "run"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=processes.die_with_parent,
            )
        self.started_at = time.monotonic()

    @property
    def pid(self) -> int:
        """The running process's id."""
        if self.proc is None:
            raise RuntimeError("the worker is not running")
        return self.proc.pid

    def get(self, path: str, timeout_s: float = 5.0) -> tuple[int, str]:
        """(status, body) of a request to the worker's web server."""
        url = f"http://127.0.0.1:{self.web_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as r:
                return int(r.status), r.read().decode()
        except urllib.error.HTTPError as e:
            return int(e.code), ""

    def alive(self) -> bool:
        """True while the process runs."""
        return self.proc is not None and self.proc.poll() is None

    def ready(self) -> bool:
        """/ready answers 200."""
        try:
            return self.get("/ready", 2.0)[0] == 200
        except OSError:
            return False

    def wait_ready(self, timeout_s: float) -> float:
        """Block until /ready; returns seconds since the start."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"worker exited:\n{self.log_tail()}")
            if self.ready():
                return time.monotonic() - self.started_at
            time.sleep(0.1)
        raise RuntimeError(f"worker not ready after {timeout_s:.0f} s:\n{self.log_tail()}")

    def counters(self) -> dict[str, float]:
        """The watched counters now."""
        return totals(self.get("/metrics")[1])

    def usage(self) -> Usage | None:
        """CPU and peak memory of the process so far."""
        return usage(self.pid) if self.proc is not None else None

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 30 s."""
        proc, self.proc = self.proc, None
        processes.stop(proc, 30.0)

    def kill(self) -> None:
        """SIGKILL at once, as a crash would end it."""
        proc, self.proc = self.proc, None
        if proc is not None:
            proc.kill()
            proc.wait()

    def log_tail(self, lines: int = 40) -> str:
        """The end of the log, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


def check_alive(workers: list[Worker]) -> None:
    """Raise, with the log's end, if a worker exited while a run needs it."""
    for w in workers:
        if not w.alive():
            raise RuntimeError(f"worker exited during the run:\n{w.log_tail()}")


def summed(workers: list[Worker]) -> dict[str, float]:
    """The watched counters summed over workers."""
    out = dict.fromkeys(WATCHED, 0.0)
    for w in workers:
        for k, v in w.counters().items():
            out[k] += v
    return out


def cpu_of(workers: list[Worker]) -> float:
    """CPU seconds of the workers so far."""
    return sum(u.cpu_s for w in workers if (u := w.usage()) is not None)


@dataclass
class Drain:
    """One drain of a backlog by the processor."""

    messages: int
    seconds: float
    cpu_s: float
    broker_cpu_s: float
    peak_rss_bytes: int
    counters: dict[str, float]
    complete: bool


def _next_poll(done: float, seconds: float, left: float, least_s: float, most_s: float) -> float:
    """How long to wait for the next poll: half the time the rate so far says the `left`
    messages take, within [least_s, most_s]."""
    if done <= 0 or seconds <= 0:
        return least_s
    return min(most_s, max(least_s, left / (done / seconds) / 2))


def drain(
    workers: list[Worker],
    *,
    expect_messages: int,
    broker_pid: int | None,
    timeout_s: float,
    log: Callable[[str], None],
    max_s: float | None = None,
    poll_s: float = 0.1,
    most_s: float = 1.0,
) -> Drain:
    """Watch running workers until every one of `expect_messages` inbound messages is done
    (processed by the journey or dead-lettered), or for at most `max_s` seconds of processing.

    The clock starts at the first poll that sees a consumed message; what was done by then is
    not credited. Each poll is a scrape of every worker's /metrics, which costs the worker
    CPU (a scrape every 0.25 s took 3 % of its samples): the polls come every `most_s` while
    the end is far, closer (down to `poll_s`) as the rate so far says it comes near.
    """
    t0 = c0 = b0 = 0.0
    n0 = 0.0
    last_log = time.monotonic()
    deadline = time.monotonic() + timeout_s
    counts = dict.fromkeys(WATCHED, 0.0)
    done = False

    def finished(c: dict[str, float]) -> float:
        return c["touchpoint_events_processed_total"] + c["touchpoint_deadletters_total"]

    while time.monotonic() < deadline:
        check_alive(workers)
        now = time.monotonic()
        try:
            counts = summed(workers)
        except OSError:  # the web server is not up yet
            time.sleep(poll_s)
            continue
        if not t0 and counts["touchpoint_messages_consumed_total"] > 0:
            t0, n0, c0 = now, finished(counts), cpu_of(workers)
            b0 = _cpu(broker_pid)
        if finished(counts) >= expect_messages:
            done = True
            break
        if t0 and max_s is not None and now - t0 >= max_s:
            break
        if now - last_log >= 10:
            last_log = now
            rate = (finished(counts) - n0) / (now - t0) if t0 and now > t0 else 0.0
            log(f"  {finished(counts):,.0f} of {expect_messages:,} done ({rate:,.0f}/s)")
        time.sleep(
            _next_poll(
                finished(counts) - n0,
                now - t0 if t0 else 0.0,
                expect_messages - finished(counts),
                poll_s,
                most_s,
            )
        )
    t1 = time.monotonic()
    cpu = cpu_of(workers) - c0
    broker = _cpu(broker_pid) - b0
    peak = max((u.peak_rss_bytes for w in workers if (u := w.usage()) is not None), default=0)
    return Drain(
        messages=int(finished(counts) - n0),
        seconds=t1 - t0 if t0 else 0.0,
        cpu_s=cpu,
        broker_cpu_s=broker,
        peak_rss_bytes=peak,
        counters=counts,
        complete=done,
    )


def _cpu(pid: int | None) -> float:
    u = usage(pid) if pid is not None else None
    return u.cpu_s if u is not None else 0.0
