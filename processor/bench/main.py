"""`python -m processor.bench` (`make bench`): run every contestant on one broker, in one run."""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from processor import processes
from processor import topics as t
from processor.bench import kafka, latency, naive, quix, raw, report, state, step, stream
from processor.bench.proc import usage
from processor.bench.worker import Worker, drain
from processor.journey.definition import load_journey
from processor.kafka.embedded import EmbeddedBroker
from processor.kafka.tools import apply_topics
from processor.settings import DEFAULT_JOURNEY_FILE, Settings


@dataclass(frozen=True)
class Size:
    """How big a benchmark run is."""

    events: int
    customers: int
    runs: int
    naive_seconds: float
    #: The processor's runs drain the stream's first this many messages (None: all of it).
    processor_events: int | None
    latency_seconds: float
    state_customers: int


#: The journey step is timed on the stream's first this many messages (held decoded in memory).
STEP_EVENTS = 100_000

SIZES = {
    # ~6 messages per simulated customer: 170,000 customers give the million (the tail of the
    # last customers' lives is cut at the millionth message).
    "full": Size(1_000_000, 170_000, 3, 30.0, 100_000, 60.0, 1_000_000),
    "quick": Size(100_000, 17_000, 3, 15.0, None, 20.0, 100_000),
    "smoke": Size(2_000, 340, 1, 5.0, None, 4.0, 2_000),
}


@dataclass
class Run:
    """One contestant's run."""

    messages: int
    seconds: float
    cpu_s: float
    broker_cpu_s: float
    peak_rss_bytes: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        """Messages per second."""
        return self.messages / self.seconds if self.seconds > 0 else 0.0


class Clock:
    """Progress lines with the time since the start."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def __call__(self, text: str) -> None:
        elapsed = time.monotonic() - self.started
        print(f"[{elapsed // 60:3.0f}:{elapsed % 60:04.1f}] {text}", flush=True)


def _sample_broker(
    pid: int | None, until: Callable[[], bool], every_s: float = 0.25
) -> list[tuple[float, float]]:
    """(epoch s, broker CPU s) every `every_s` until `until()` holds."""
    samples: list[tuple[float, float]] = []
    while True:
        u = usage(pid) if pid is not None else None
        samples.append((time.time(), u.cpu_s if u else 0.0))
        if until():
            return samples
        time.sleep(every_s)


def _between(samples: list[tuple[float, float]], start: float, end: float) -> float:
    """Broker CPU seconds between two epoch times, from the nearest samples."""
    if not samples:
        return 0.0
    first = min(samples, key=lambda s: abs(s[0] - start))
    last = min(samples, key=lambda s: abs(s[0] - end))
    return max(0.0, last[1] - first[1])


def run_child(
    module: str,
    args: list[str],
    broker_pid: int | None,
    log_path: Path,
    python: Path | None = None,
) -> Run:
    """Run a contestant module in its own process (with `python`, else this interpreter); it
    writes its result to a file."""
    result = log_path.with_suffix(".result.json")
    result.unlink(missing_ok=True)
    env = None
    if python is not None:  # another environment: it finds the module from the checkout
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    with log_path.open("ab") as out:
        proc = subprocess.Popen(  # noqa: S603 (our own interpreter and module)
            [str(python or sys.executable), "-m", module, *args, "--result", str(result)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=processes.die_with_parent,
        )
        try:
            samples = _sample_broker(broker_pid, lambda: proc.poll() is not None)
        finally:
            processes.stop(proc, 10.0)
    if proc.returncode != 0 or not result.exists():
        raise RuntimeError(f"{module} failed ({proc.returncode}); see {log_path}")
    r = orjson.loads(result.read_bytes())
    return Run(
        messages=r["messages"],
        seconds=r["last_at"] - r["first_at"],
        cpu_s=r["cpu_s"],
        broker_cpu_s=_between(samples, r["first_at"], r["last_at"]),
        peak_rss_bytes=r["peak_rss_bytes"],
        extra={k: v for k, v in r.items() if k in ("invalid", "keys")},
    )


def median_run(runs: list[Run]) -> Run:
    """The run with the median rate."""
    ordered = sorted(runs, key=lambda r: r.rate)
    return ordered[len(ordered) // 2]


class Bench:
    """One benchmark: the broker, the stream, and each contestant in turn."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.size: Size = SIZES[args.size]
        self.runs = args.runs or self.size.runs
        self.home: Path = args.dir
        self.logs = self.home / "logs"
        self.log = Clock()
        self.results: dict[str, Any] = {
            "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "size": args.size,
            "runs": self.runs,
            "machine": report.machine(),
        }
        self.results["broker"] = args.broker
        self.broker: Any = None
        self.brokers = 0
        self.samples: list[bytes] = []
        self.specs = t.load(Settings().topics_dir)
        self.worker_env = {
            "TOUCHPOINT_MAX_EVENT_BYTES": str(stream.StreamSpec(1, 1).max_event_bytes),
            "TOUCHPOINT_LOG_LEVEL": "info",
            **dict(kv.split("=", 1) for kv in args.worker_env),
        }

    @property
    def broker_pid(self) -> int | None:
        return self.broker.pid if self.broker is not None else None

    @contextmanager
    def fresh_broker(self, info: stream.StreamInfo, publish: int) -> Iterator[str]:
        """A newly started broker with the topics, and the stream's first `publish` messages
        on the inbound topics (restamped to now); stopped afterwards.

        Every run gets its own broker: the embedded broker never expires the membership of a
        stopped worker, so a consumer group cannot be reset for a replay in place, and a fresh
        broker also gives each contestant the same start.
        """
        self.brokers += 1
        with self._start_broker() as broker:
            self.broker = broker
            try:
                settings = Settings(kafka_bootstrap=broker.bootstrap)
                asyncio.run(apply_topics(settings, say=lambda _: None))
                if publish:
                    last_s = info.last_s if publish >= info.messages else None
                    if last_s is None:
                        last_s = stream.last_s_of(info.path, publish)
                    restamp = stream.Restamp(last_s, datetime.now(UTC))
                    sent = asyncio.run(
                        kafka.publish(
                            broker.bootstrap, stream.read(info.path, publish), transform=restamp,
                            log=self.log, total=publish,
                        )
                    )  # fmt: skip
                    self.log(
                        f"  fresh broker, {sent.messages:,} messages published in "
                        f"{sent.seconds:.1f} s ({sent.messages / sent.seconds:,.0f}/s)"
                    )
                yield broker.bootstrap
            finally:
                self.broker = None

    @contextmanager
    def _start_broker(self) -> Iterator[Any]:
        """The embedded broker, or a real Apache Kafka (the test suite's harness: jars from
        Maven Central, a fresh data directory removed afterwards)."""
        if self.args.broker == "embedded":
            with EmbeddedBroker(log_path=self.logs / f"broker-{self.brokers}.log") as broker:
                yield broker
            return
        try:
            from tests.brokers.apache_kafka import ApacheKafka
        except ImportError as exc:
            raise SystemExit(
                "--broker kafka runs from a repository checkout: it starts Apache Kafka with "
                "the test suite's harness (tests/brokers/apache_kafka.py)"
            ) from exc
        home = self.home / f"kafka-{self.brokers}"
        shutil.rmtree(home, ignore_errors=True)
        try:
            with ApacheKafka(home, progress=self.log) as kafka:
                yield kafka
        finally:
            shutil.rmtree(home, ignore_errors=True)

    def run(self) -> int:
        self.logs.mkdir(parents=True, exist_ok=True)
        spec = stream.StreamSpec(events=self.size.events, customers=self.size.customers)
        info = stream.ensure(spec, self.home, log=self.log)
        self.results["stream"] = {**info.to_json(), "spec": asdict(spec)}
        self.log(
            f"stream: {info.messages:,} messages ({info.valid:,} valid, {info.duplicates:,} "
            f"duplicates, {sum(info.invalid.values()):,} invalid) from {info.customers:,} "
            f"customers, {info.bytes / 1e6:.0f} MB"
        )
        skip = set(self.args.skip)
        if "raw" not in skip:
            self.contest_raw(info, "raw")
        if "validating" not in skip:
            self.contest_raw(info, "validating")
        if "naive" not in skip:
            self.contest_naive(info, "naive")
        if "empty" not in skip:
            self.contest_naive(info, "empty")
        if "quix" not in skip:
            self.contest_quix(info)
        if "processor" not in skip:
            self.contest_processor(info, self.args.workers, "processor")
        if "scaled" not in skip and "processor" not in skip and self.args.scale > 1:
            self.contest_processor(info, self.args.scale, "scaled")
        if "latency" not in skip and "processor" in self.results:
            self.contest_latency(info)
        if "step" not in skip:
            self.contest_step(info)
        if "state" not in skip:
            self.contest_state(info)
        self.results["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        self.results["elapsed_s"] = time.monotonic() - self.log.started
        text = report.table(self.results)
        print()
        print(text, flush=True)
        out = self.args.output
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(orjson.dumps(self.results, option=orjson.OPT_INDENT_2))
        print(f"\nresults: {out}", flush=True)
        return 0

    def _summary(self, name: str, runs: list[Run], **more: Any) -> None:
        med = median_run(runs)
        self.results[name] = {
            "rate": med.rate,
            "rates": [r.rate for r in runs],
            "messages": med.messages,
            "seconds": med.seconds,
            "cpu_s_per_1000": 1000 * med.cpu_s / med.messages if med.messages else 0.0,
            "broker_cpu_s_per_1000": 1000 * med.broker_cpu_s / med.messages if med.messages else 0,
            "peak_rss_bytes": max(r.peak_rss_bytes for r in runs),
            "runs": [asdict(r) for r in runs],
            **more,
        }
        rates = ", ".join(f"{r.rate:,.0f}" for r in runs)
        self.log(f"{name}: median {med.rate:,.0f} events/s (runs: {rates})")

    def contest_raw(self, info: stream.StreamInfo, name: str) -> None:
        """The raw aiokafka pipe ("raw"), or the same pipe validating each event ("validating")."""
        what = "raw aiokafka pipe" if name == "raw" else "raw pipe, validating"
        validate = ["--validate"] if name == "validating" else []
        runs = []
        for i in range(self.runs):
            self.log(f"{what}, run {i + 1} of {self.runs}")
            with self.fresh_broker(info, info.messages) as bootstrap:
                mine: dict[str, tuple[int, dict[str, str]]] = {
                    raw.CHANGELOG: (8, {}),
                    raw.OUTPUT: (8, {}),
                }
                asyncio.run(kafka.recreate(bootstrap, mine))
                r = run_child(
                    "processor.bench.raw",
                    ["--bootstrap", bootstrap, "--group", "bench-raw",
                     "--expect", str(info.messages), *validate],
                    self.broker_pid,
                    self.logs / f"{name}.log",
                )  # fmt: skip
            self.log(f"  {r.messages:,} in {r.seconds:.1f} s: {r.rate:,.0f}/s")
            runs.append(r)
        self._summary(name, runs)

    def contest_naive(self, info: stream.StreamInfo, name: str) -> None:
        """The naive Faust agent ("naive"), or the same agent doing nothing ("empty")."""
        what = "naive Faust agent" if name == "naive" else "empty Faust agent"
        # Enough for the bounded time at several times the expected rate.
        per_s = 10_000 if name == "naive" else 15_000
        empty = ["--empty"] if name == "empty" else []
        self._bounded(info, name, what, "processor.bench.naive", naive.OUTPUT, per_s, empty)

    def contest_quix(self, info: stream.StreamInfo) -> None:
        """The naive job as a Quix Streams app, in its own environment."""
        python = quix.environment(self.log)
        topics = ["--topics", ",".join(t.INBOUND)]
        self._bounded(info, "quix", "Quix Streams app", "processor.bench.quix", quix.OUTPUT,
                      20_000, topics, python=python)  # fmt: skip

    def _bounded(
        self,
        info: stream.StreamInfo,
        name: str,
        what: str,
        module: str,
        output: str,
        per_s: int,
        more: list[str],
        python: Path | None = None,
    ) -> None:
        """Runs of a contestant that stops after `--seconds` of processing or the messages
        published for it (the time at `per_s`, more than it is expected to drain)."""
        runs = []
        seconds = self.args.naive_seconds or self.size.naive_seconds
        publish = min(info.messages, int(seconds * per_s))
        for i in range(self.runs):
            self.log(f"{what}, run {i + 1} of {self.runs} (at most {seconds:.0f} s)")
            with self.fresh_broker(info, publish) as bootstrap:
                asyncio.run(kafka.recreate(bootstrap, {output: (8, {})}))
                datadir = self.home / name
                shutil.rmtree(datadir, ignore_errors=True)
                r = run_child(
                    module,
                    ["--bootstrap", bootstrap, "--run", str(i), "--datadir", str(datadir),
                     "--expect", str(publish), "--seconds", str(seconds), *more],
                    self.broker_pid,
                    self.logs / f"{name}.log",
                    python=python,
                )  # fmt: skip
            self.log(f"  {r.messages:,} in {r.seconds:.1f} s: {r.rate:,.0f}/s")
            runs.append(r)
        bounded = runs[0].messages < info.messages
        self._summary(name, runs, bounded_seconds=seconds if bounded else None)

    def _workers(self, name: str, bootstrap: str, count: int) -> list[Worker]:
        return [
            Worker(bootstrap, self.home / name / f"w{n}", env=dict(self.worker_env))
            for n in range(count)
        ]

    def contest_processor(self, info: stream.StreamInfo, workers: int, name: str) -> None:
        """`workers` worker processes drain the stream's first messages, each run on a fresh
        broker; the results go under `name` ("processor", or "scaled" for more workers)."""
        runs = []
        bound = self.size.processor_events
        if self.args.processor_events is not None:
            bound = self.args.processor_events or None
        count = min(info.messages, bound or info.messages)
        for i in range(self.runs):
            self.log(f"processor ({workers} worker(s)), run {i + 1} of {self.runs}")
            with self.fresh_broker(info, count) as bootstrap:
                procs = self._workers(name, bootstrap, workers)
                for w in procs:
                    w.start()
                try:
                    d = drain(
                        procs, expect_messages=count, broker_pid=self.broker_pid,
                        timeout_s=self.args.processor_timeout, log=self.log,
                    )  # fmt: skip
                finally:
                    for w in procs:
                        w.stop()
                last = i == self.runs - 1
                if last and name == "processor" and "state" not in self.args.skip:
                    self.samples = asyncio.run(state.sample_states(bootstrap, 20_000))
            r = Run(d.messages, d.seconds, d.cpu_s, d.broker_cpu_s, d.peak_rss_bytes,
                    {"complete": d.complete, "counters": d.counters})  # fmt: skip
            c = d.counters
            self.log(
                f"  {r.messages:,} in {r.seconds:.1f} s: {r.rate:,.0f}/s; "
                f"{c['touchpoint_actions_total']:,.0f} actions, "
                f"{c['touchpoint_transitions_total']:,.0f} transitions, "
                f"{c['touchpoint_deadletters_total']:,.0f} dead letters, "
                f"{c['touchpoint_duplicate_events_total']:,.0f} duplicates"
            )
            runs.append(r)
        complete = all(r.extra["complete"] for r in runs)
        self._summary(name, runs, workers=workers, complete=complete,
                      sample=count if count < info.messages else None)  # fmt: skip

    def contest_latency(self, info: stream.StreamInfo) -> None:
        max_rate = self.results["processor"]["rate"]
        rate = max_rate / 2
        seconds = self.args.latency_seconds or self.size.latency_seconds
        count = min(info.messages, max(100, int(rate * seconds)))
        self.log(f"latency: {count:,} messages at {rate:,.0f}/s (half the measured maximum)")
        with self.fresh_broker(info, 0) as bootstrap:
            workers = self._workers("latency", bootstrap, self.args.workers)
            for w in workers:
                w.start()
            try:
                for w in workers:
                    w.wait_ready(120)
                time.sleep(2)  # let the last rebalance settle
                templates = latency.immediate_templates(load_journey(DEFAULT_JOURNEY_FILE))
                lat = asyncio.run(
                    latency.paced(bootstrap, info.path, workers, rate=rate, count=count,
                                  templates=templates, log=self.log)
                )  # fmt: skip
            finally:
                for w in workers:
                    w.stop()
        pct = latency.percentile
        self.results["latency"] = {
            "rate": rate,
            "achieved_rate": lat.achieved_rate,
            "messages": lat.messages,
            "actions_measured": len(lat.received),
            "actions_seen": lat.actions,
            **{f"emitted_p{q}_ms": 1000 * pct(lat.emitted, q) for q in (50, 95, 99)},
            **{f"p{q}_ms": 1000 * pct(lat.received, q) for q in (50, 95, 99)},
            "max_ms": 1000 * max(lat.received, default=0.0),
        }
        L = self.results["latency"]
        self.log(
            f"  {len(lat.received):,} actions: p50 {L['p50_ms']:.0f} ms, p95 {L['p95_ms']:.0f} "
            f"ms, p99 {L['p99_ms']:.0f} ms (publish to action read downstream)"
        )

    def contest_step(self, info: stream.StreamInfo) -> None:
        """The journey `step` alone, in this process, on the stream's first messages."""
        limit = min(info.messages, STEP_EVENTS)
        self.log(f"journey step: decoding the stream's first {limit:,} messages")
        journey_file = self.worker_env.get("TOUCHPOINT_JOURNEY_FILE", str(DEFAULT_JOURNEY_FILE))
        events = step.inputs(
            info.path, max_event_bytes=int(self.worker_env["TOUCHPOINT_MAX_EVENT_BYTES"]),
            limit=limit,
        )  # fmt: skip
        times = step.measure(events, load_journey(Path(journey_file)))
        self.log(
            f"  {times.events:,} steps: median {times.median_us:.1f} µs, p99 "
            f"{times.p99_us:.1f} µs, CPU {times.cpu_mean_us:.1f} µs per step"
        )
        self.results["step"] = times.to_json()

    def contest_state(self, info: stream.StreamInfo) -> None:
        people = self.args.state_customers or self.size.state_customers
        if not self.samples:
            self.log("state: no sample states (the processor did not run); skipped")
            return
        self.log(f"state: writing {people:,} customers' states to {t.JOURNEY_CHANGELOG}")
        with self.fresh_broker(info, 0) as bootstrap:
            partitions = self.specs[t.JOURNEY_CHANGELOG].partitions
            fill_s = asyncio.run(state.fill(bootstrap, self.samples, people, partitions, self.log))
            self.log(f"  written in {fill_s:.1f} s; starting a worker on an empty local store")
            worker = Worker(bootstrap, self.home / "state", env=dict(self.worker_env))
            first = state.recover(worker, start="new", settle_s=5.0, timeout_s=1800)
            self.log(
                f"  built its store in {first.ready_s:.1f} s, peak RSS "
                f"{first.peak_rss_bytes / 2**20:,.0f} MiB; restarting with the store deleted"
            )
            second = state.recover(worker, start="store", settle_s=5.0, timeout_s=1800)
            self.log(
                f"  rebuilt in {second.ready_s:.1f} s, peak RSS "
                f"{second.peak_rss_bytes / 2**20:,.0f} MiB; timer index after recovery: "
                f"{second.timer_index_s} s; restarting on a new data directory"
            )
            anew = state.recover(worker, start="new", settle_s=2.0, timeout_s=1800)
            self.log(
                f"  rebuilt as a new group member in {anew.ready_s:.1f} s; now SIGKILLed and "
                "started on its store"
            )
            state.recover(worker, start="kept", settle_s=2.0, timeout_s=1800, kill=True)
            killed = state.recover(worker, start="kept", settle_s=2.0, timeout_s=1800)
        self.log(f"  ready {killed.ready_s:.1f} s after the SIGKILL, on its own store")
        self.results["state"] = {
            "customers": people,
            "state_bytes_mean": statistics.mean(len(s) for s in self.samples),
            "fill_s": fill_s,
            "first_start": asdict(first),
            "second_start": asdict(second),
            "new_member_start": asdict(anew),
            "rebuild_s": second.ready_s,
            "new_member_rebuild_s": anew.ready_s,
            "ready_after_kill_s": killed.ready_s,
            "timer_index_s": second.timer_index_s,
            "peak_rss_bytes": max(r.peak_rss_bytes for r in (first, second, anew)),
        }


def parser() -> argparse.ArgumentParser:
    """The command line."""
    p = argparse.ArgumentParser(
        prog="python -m processor.bench",
        description="Benchmark the processor against a raw aiokafka pipe, a naive Faust agent "
        "and a Quix Streams app on one broker (embedded, or Apache Kafka with --broker kafka); "
        "prints a table and writes the results "
        "as JSON.",
    )
    p.add_argument(
        "--size",
        choices=sorted(SIZES),
        default="full",
        help="full: 1,000,000 events (~20-30 min); quick: 100,000; smoke: 2,000",
    )
    p.add_argument("--quick", dest="size", action="store_const", const="quick",
                   help="the same as --size quick")  # fmt: skip
    p.add_argument("--runs", type=int, default=None, help="runs per contestant (size default)")
    p.add_argument("--workers", type=int, default=1, help="processor worker processes (1)")
    p.add_argument("--scale", type=int, default=2, metavar="N",
                   help="also run the processor with N worker processes, to show how it "
                   "scales (2; 0 or 1: not at all)")  # fmt: skip
    p.add_argument("--naive-seconds", type=float, default=None,
                   help="the naive and the empty agent's runs stop after this much "
                   "processing")  # fmt: skip
    p.add_argument("--latency-seconds", type=float, default=None,
                   help="how long the paced latency run publishes")  # fmt: skip
    p.add_argument("--state-customers", type=int, default=None,
                   help="customers in state for the memory and rebuild measurement")  # fmt: skip
    p.add_argument("--processor-events", type=int, default=None,
                   help="the processor's runs drain the stream's first N messages; 0: the "
                   "whole stream (size default)")  # fmt: skip
    p.add_argument("--processor-timeout", type=float, default=3600.0,
                   help="give up a processor run after this many seconds")  # fmt: skip
    p.add_argument("--skip", action="append", default=[], choices=[
        "raw", "validating", "naive", "empty", "quix", "processor", "scaled", "latency", "step",
        "state",
    ])  # fmt: skip
    p.add_argument("--worker-env", action="append", default=[], metavar="NAME=VALUE",
                   help="extra environment for the processor's workers")  # fmt: skip
    p.add_argument("--broker", choices=["embedded", "kafka"], default="embedded",
                   help="embedded: the Tansu broker (default); kafka: a real Apache Kafka "
                   "(KRaft, jars from Maven Central, as the test suite's), a fresh one per "
                   "run like the embedded one")  # fmt: skip
    p.add_argument("--dir", type=Path, default=Path("data/bench"),
                   help="cache, logs and local state (data/bench)")  # fmt: skip
    p.add_argument("--output", type=Path, default=None,
                   help="the results file (default DIR/results-SIZE.json)")  # fmt: skip
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    args = parser().parse_args(argv)
    if args.output is None:
        broker = "" if args.broker == "embedded" else f"-{args.broker}"
        args.output = args.dir / f"results-{args.size}{broker}.json"
    return Bench(args).run()
