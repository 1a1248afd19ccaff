"""`touchpoint demo` (`make run`): broker, worker and simulator, with a live summary."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from processor import processes
from processor.cli.common import load_settings, positive_float, positive_int
from processor.settings import Settings


def _spawn(argv: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        # A session of its own: the terminal's Ctrl-C reaches only the demo, which then stops
        # the worker before the broker, so the worker can commit while the broker still runs.
        return subprocess.Popen(  # noqa: S603 (our own interpreter and arguments)
            [sys.executable, "-m", "processor.cli", *argv],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
            preexec_fn=processes.die_with_parent,
        )


def _stop(proc: subprocess.Popen[bytes] | None, name: str, timeout_s: float) -> None:
    def say() -> None:
        print(f"touchpoint demo: {name} did not stop in {timeout_s:.0f} s, killing it", flush=True)

    processes.stop(proc, timeout_s, on_kill=say)


def _wait_for(
    check: Callable[[], bool], proc: subprocess.Popen[bytes], log: Path, what: str, timeout_s: float
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:]
            raise OSError(f"{what} exited with code {proc.returncode}; its log {log}:\n{tail}")
        if check():
            return
        time.sleep(0.2)
    raise OSError(f"{what} not ready within {timeout_s:.0f} s; see {log}")


def _get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:  # noqa: S310 (our own worker on loopback)
            return str(r.read().decode())
    except (urllib.error.URLError, OSError):
        return None


async def _live(args: argparse.Namespace, settings: Settings, base: str, out: IO[str]) -> None:
    from processor.simulate.generator import generate
    from processor.simulate.publisher import publish
    from processor.simulate.summary import Snapshot, parse

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    config = _sim_config(args, settings)
    t0 = time.monotonic()
    sim = asyncio.create_task(
        publish(settings, lambda start: generate(replace(config, start=start)))
    )
    before: Snapshot | None = None
    with _Screen(out) as screen:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), args.refresh)
            text = await asyncio.to_thread(_get, f"{base}/metrics")
            if text is None or stop.is_set():
                continue
            now = parse(text)
            sim_day = (time.monotonic() - t0) * config.compression / 86400
            screen.show(now, before, args.refresh, sim_day, base, sim.done())
            before = now
            if sim.done() and sim.exception() is not None:
                raise OSError(f"the simulator failed: {sim.exception()}")
    sim.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await sim


class _Screen:
    """Where the summary goes: one live-updating panel on a terminal (rich), else plain lines
    appended to the output (a log keeps every summary)."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out
        self.live: Any = None

    def __enter__(self) -> _Screen:
        if self.out.isatty():
            from rich.console import Console
            from rich.live import Live

            self.live = Live(console=Console(file=self.out), auto_refresh=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(None, None, None)

    def show(
        self, now: Any, before: Any, interval_s: float, sim_day: float, url: str, done: bool
    ) -> None:
        from processor.simulate.summary import render, rows, title

        note = "simulation finished; timers keep firing" if done else ""
        if self.live is None:
            tail = f" ({note})" if note else ""
            self.out.write(f"{render(now, before, interval_s, sim_day, url)}{tail}\n")
            self.out.write("   Ctrl-C stops broker, worker and simulator\n\n")
            self.out.flush()
            return
        self.live.update(panel(title(sim_day, url), rows(now, before, interval_s), note))
        self.live.refresh()


def panel(heading: str, lines: list[tuple[str, str]], note: str = "") -> Any:
    """The summary as a rich panel: a two-column table under the heading."""
    from rich.panel import Panel
    from rich.table import Table

    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold cyan", no_wrap=True)
    table.add_column()
    for label, value in lines:
        table.add_row(label, value)
    footer = " · ".join(x for x in (note, "Ctrl-C stops broker, worker and simulator") if x)
    return Panel(table, title=heading, subtitle=footer, border_style="blue")


def _sim_config(args: argparse.Namespace, settings: Settings) -> Any:
    from processor.simulate.generator import SimConfig

    return SimConfig(
        start=datetime.now(UTC),
        customers=args.customers,
        seed=args.seed,
        compression=args.time_compression,
        rate=args.rate,
        spread_s=args.spread_days * 86400.0,
        invalid_fraction=0.02,
        duplicate_fraction=0.02,
        max_event_bytes=settings.max_event_bytes,
    )


def cmd_demo(args: argparse.Namespace) -> int:
    from processor.kafka.embedded import free_port
    from processor.simulate.compress import write_compressed

    settings = load_settings()
    say = print
    workdir = settings.data_dir / "demo"
    workdir.mkdir(parents=True, exist_ok=True)
    journey = write_compressed(
        settings.journey_file,
        args.time_compression,
        workdir / f"{settings.journey_file.stem}-x{args.time_compression:g}.yaml",
    )
    day_s = 86400 / args.time_compression
    say(f"touchpoint demo: journey {settings.journey_file.name} compressed "
        f"{args.time_compression:g}x -> {journey}", flush=True)  # fmt: skip
    hour_s = 3600 / args.time_compression
    say(f"  a simulated day lasts {day_s:g} s: cart reminder after {hour_s:.1f} s, onboarding "
        f"tips after {3 * day_s:g} s, lapse after {90 * day_s / 60:g} min", flush=True)  # fmt: skip
    env = {**os.environ}
    broker: subprocess.Popen[bytes] | None = None
    worker: subprocess.Popen[bytes] | None = None
    try:
        bootstrap = settings.kafka_bootstrap
        if not bootstrap:
            port = args.broker_port or settings.embedded_broker_port or free_port()
            log = workdir / "broker.log"
            log.write_text("")
            broker = _spawn(["broker", "--port", str(port)], log, env)
            _wait_for(lambda: "export TOUCHPOINT" in log.read_text(), broker, log, "broker", 30)
            bootstrap = f"127.0.0.1:{port}"
            say(f"touchpoint demo: embedded broker on {bootstrap} (pid {broker.pid})", flush=True)
        settings = settings.model_copy(update={"kafka_bootstrap": bootstrap})
        env |= {
            "TOUCHPOINT_KAFKA_BOOTSTRAP": bootstrap,
            "TOUCHPOINT_JOURNEY_FILE": str(journey),
            # The embedded broker keeps nothing across runs, so neither may the worker.
            "TOUCHPOINT_STORE": "memory",
            "TOUCHPOINT_DATA_DIR": str(workdir / "worker"),
        }
        # The embedded broker holds a group join for the rebalance timeout: short starts fast.
        env.setdefault("TOUCHPOINT_REBALANCE_TIMEOUT_S", "3")
        env.setdefault("TOUCHPOINT_TIMER_TICK_S", "0.5")
        # A lost timer request is re-sent after this; 30 s (the default) is 12 h at 1440x.
        env.setdefault("TOUCHPOINT_TIMER_RESEND_S", "2")
        log = workdir / "worker.log"
        log.write_text("")
        worker = _spawn(["run"], log, env)
        base = f"http://{settings.web_host}:{settings.web_port}"
        _wait_for(lambda: _get(f"{base}/ready") is not None, worker, log, "worker", 90)
        say(f"touchpoint demo: worker ready (pid {worker.pid}); status {base}/ready, "
            f"metrics {base}/metrics; logs in {workdir}", flush=True)  # fmt: skip
        say(f"touchpoint demo: simulating {args.customers} customers, {args.time_compression:g}x "
            f"time, first summary in {args.refresh:g} s", flush=True)  # fmt: skip
        asyncio.run(_live(args, settings, base, sys.stdout))
    except KeyboardInterrupt:
        pass
    finally:
        # A second Ctrl-C must not cut the shutdown short: the children would survive it anyway
        # (they die with the demo), but the worker would not commit.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        say("touchpoint demo: stopping worker and broker", flush=True)
        _stop(worker, "worker", 30)
        _stop(broker, "broker", 15)
        say("touchpoint demo: stopped", flush=True)
    return 0


def register(sub: Any) -> None:
    """Add the command to the `touchpoint` parser."""
    demo = sub.add_parser(
        "demo",
        help="broker, worker and simulated customers, with a live summary (make run)",
        description="Start the embedded broker (unless TOUCHPOINT_KAFKA_BOOTSTRAP is set) and a "
        "worker running the journey compressed by --time-compression (written to "
        "TOUCHPOINT_DATA_DIR/demo), publish simulated customers on the same compressed "
        "clock, and print a summary every --refresh seconds from the worker's /metrics. "
        "Ctrl-C or SIGTERM stops simulator, worker and broker, and exits 0.",
    )
    demo.add_argument("--broker-port", type=int, default=None, help="embedded broker port")
    demo.add_argument(
        "--customers", type=positive_int, default=2000, help="simulated people (2000)"
    )
    demo.add_argument("--seed", type=int, default=1, help="random seed (1)")
    demo.add_argument("--time-compression", type=positive_float, default=1440.0, metavar="X",
                      help="simulated seconds per wall second (1440: a day a minute)")  # fmt: skip
    demo.add_argument("--spread-days", type=positive_float, default=30.0,
                      help="customers arrive over this many simulated days (30)")  # fmt: skip
    demo.add_argument(
        "--rate", type=positive_float, default=50.0, help="at most this many events/s (50)"
    )
    demo.add_argument(
        "--refresh", type=positive_float, default=3.0, help="seconds between summaries (3)"
    )
    demo.set_defaults(func=cmd_demo)
