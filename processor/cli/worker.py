"""`touchpoint run` and `touchpoint broker`: a worker, and the embedded broker."""

from __future__ import annotations

import argparse
import asyncio
import signal
from types import FrameType
from typing import Any

from processor import logs
from processor.cli.common import load_settings
from processor.settings import Settings


def _with_broker(settings: Settings, port: int | None) -> tuple[Settings, object | None]:
    from processor.kafka.embedded import EmbeddedBroker
    from processor.kafka.tools import apply_topics

    if settings.kafka_bootstrap:
        return settings, None
    broker = EmbeddedBroker(port if port is not None else settings.embedded_broker_port)
    broker.start()
    settings = settings.model_copy(update={"kafka_bootstrap": broker.bootstrap})
    logs.announce(settings.log_format, f"embedded broker listening on {broker.bootstrap}")
    try:
        asyncio.run(
            apply_topics(settings, say=lambda line: logs.announce(settings.log_format, line))
        )
    except BaseException:
        broker.stop()
        raise
    return settings, broker


def cmd_run(args: argparse.Namespace) -> int:
    from processor.worker import run_worker

    settings, broker = _with_broker(load_settings(), args.broker_port)
    try:
        return run_worker(settings)
    finally:
        if broker is not None:
            broker.stop()  # type: ignore[attr-defined]


def _wait_for_signal() -> None:
    stop = False

    def handler(signum: int, frame: FrameType | None) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    while not stop:
        signal.pause()


def cmd_broker(args: argparse.Namespace) -> int:
    from processor.kafka.embedded import EmbeddedBroker
    from processor.kafka.tools import apply_topics

    settings = load_settings()
    with EmbeddedBroker(args.port if args.port is not None else settings.embedded_broker_port) as b:
        print(f"touchpoint: embedded broker listening on {b.bootstrap}", flush=True)
        if not args.no_topics:
            asyncio.run(apply_topics(settings.model_copy(update={"kafka_bootstrap": b.bootstrap})))
        print(
            f"export TOUCHPOINT_KAFKA_BOOTSTRAP={b.bootstrap}   # Ctrl-C stops the broker",
            flush=True,
        )
        _wait_for_signal()
    return 0


def register(sub: Any) -> None:
    """Add the commands to the `touchpoint` parser."""
    run = sub.add_parser(
        "run",
        help="run a worker (with an embedded broker when none is set)",
        description="Run a worker in the foreground until Ctrl-C or SIGTERM. "
        "Without TOUCHPOINT_KAFKA_BOOTSTRAP it first starts the embedded broker "
        "on 127.0.0.1, creates the topics, and stops the broker on exit.",
    )
    run.add_argument(
        "--broker-port",
        type=int,
        default=None,
        help="port of the embedded broker (default: TOUCHPOINT_EMBEDDED_BROKER_PORT, "
        "0 = any free port)",
    )
    run.set_defaults(func=cmd_run)

    broker = sub.add_parser(
        "broker",
        help="run only the embedded broker, in the foreground",
        description="Run the embedded (memory-only) broker on 127.0.0.1 and "
        "create the declared topics; everything is gone when it stops.",
    )
    broker.add_argument("--port", type=int, default=None, help="port (default: a free one)")
    broker.add_argument("--no-topics", action="store_true", help="do not create the topics")
    broker.set_defaults(func=cmd_broker)
