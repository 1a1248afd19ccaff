"""The `touchpoint` command line: run a worker, the embedded broker, and operator tools."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from pydantic import ValidationError

from processor import __version__
from processor import topics as t
from processor.kafka.embedded import EmbeddedBrokerError
from processor.settings import Settings

TAILABLE = {"actions": t.ACTIONS, "transitions": t.TRANSITIONS, "deadletter": t.DEADLETTER}

DESCRIPTION = """\
touchpoint-processor: a Kafka-native customer journey engine.

Reads touchpoint events from touchpoints.web, touchpoints.email and touchpoints.store,
keeps each person's journey state, and writes stage transitions to journey.transitions,
follow-up actions to journey.actions, and unprocessable input to touchpoints.deadletter.

Configuration comes from TOUCHPOINT_* environment variables (see the README). Without
TOUCHPOINT_KAFKA_BOOTSTRAP, `touchpoint run` starts an embedded broker of its own.
"""


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        lines = [
            f"  TOUCHPOINT_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors()
        ]
        raise SystemExit("touchpoint: invalid configuration:\n" + "\n".join(lines)) from exc


def _with_broker(settings: Settings, port: int | None) -> tuple[Settings, object | None]:
    from processor.kafka.embedded import EmbeddedBroker
    from processor.kafka.tools import apply_topics

    if settings.kafka_bootstrap:
        return settings, None
    broker = EmbeddedBroker(port if port is not None else settings.embedded_broker_port)
    broker.start()
    settings = settings.model_copy(update={"kafka_bootstrap": broker.bootstrap})
    print(f"touchpoint: embedded broker listening on {broker.bootstrap}", flush=True)
    try:
        asyncio.run(apply_topics(settings))
    except BaseException:
        broker.stop()
        raise
    return settings, broker


def cmd_run(args: argparse.Namespace) -> int:
    from processor.stream.worker import run_worker

    settings, broker = _with_broker(_settings(), args.broker_port)
    try:
        print(
            f"touchpoint: worker on http://{settings.web_host}:{settings.web_port}/metrics",
            flush=True,
        )
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

    settings = _settings()
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


def cmd_topics(args: argparse.Namespace) -> int:
    from processor.kafka.tools import apply_topics, check_topics

    settings = _settings()
    if args.action == "apply":
        asyncio.run(apply_topics(settings))
        return 0
    drift = asyncio.run(check_topics(settings))
    for d in drift:
        print(f"drift: {d}")
    print("topics match their declarations" if not drift else f"{len(drift)} difference(s)")
    return 1 if drift else 0


def cmd_publish(args: argparse.Namespace) -> int:
    from processor.kafka.tools import publish

    def progress(n: int) -> None:
        print(f"\rpublished {n}", end="", file=sys.stderr, flush=True)

    sent = asyncio.run(publish(_settings(), args.file, args.topic, progress))
    print(f"\rpublished {sent} message(s) from {args.file}", file=sys.stderr)
    return 0


def cmd_tail(args: argparse.Namespace) -> int:
    from processor.kafka.tools import tail

    filters = dict(f.split("=", 1) for f in args.where)
    out = sys.stdout.buffer

    def emit(value: bytes) -> None:
        out.write(value + b"\n")
        out.flush()

    asyncio.run(
        tail(
            _settings(),
            TAILABLE[args.topic],
            from_beginning=args.from_beginning,
            max_messages=args.max,
            idle_timeout_s=args.idle_timeout,
            filters=filters,
            emit=emit,
        )
    )
    return 0


def cmd_schemas(args: argparse.Namespace) -> int:
    from processor import schemas

    directory = _settings().topics_dir / "schemas"
    if args.check:
        stale = schemas.stale(directory)
        for name in stale:
            print(f"stale: {directory / name}")
        return 1 if stale else 0
    for path in schemas.write(directory):
        print(f"wrote {path}")
    return 0


def _journey_test(paths: list[Path]) -> int:
    from processor.journey.scenario import run_scenario
    from processor.journey.yamlfile import JourneyFileError
    from processor.settings import DEFAULT_JOURNEY_FILE

    files = [f for p in paths for f in (sorted(p.glob("*.yaml")) if p.is_dir() else [p])]
    failed = 0
    for path in files:
        try:
            result = run_scenario(path, DEFAULT_JOURNEY_FILE)
        except JourneyFileError as exc:
            failed += 1
            print(f"ERROR {path}: {exc}")
            continue
        print(result.summary)
        if not result.passed:
            failed += 1
            print(result.diff)
    print(f"{len(files) - failed} passed, {failed} failed")
    return 1 if failed or not files else 0


def cmd_journey(args: argparse.Namespace) -> int:
    from processor.journey.definition import JourneyFileError, load_journey
    from processor.journey.graph import mermaid

    if args.action == "test":
        return _journey_test(args.files)
    if len(args.files) != 1:
        print(f"touchpoint journey {args.action}: takes exactly one FILE", file=sys.stderr)
        return 2
    path = args.files[0]
    try:
        journey = load_journey(path)
    except JourneyFileError as exc:
        print(exc, file=sys.stderr)
        return 1
    if args.action == "graph":
        print(mermaid(journey), end="")
        return 0
    print(
        f"{path}: journey {journey.journey!r} is valid: {len(journey.stages)} stages, "
        f"{len(journey.transitions)} transitions, {len(journey.rules)} rules"
    )
    return 0


def parser() -> argparse.ArgumentParser:
    """The argument parser, with help for every command."""
    p = argparse.ArgumentParser(
        prog="touchpoint",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

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

    topics = sub.add_parser(
        "topics",
        help="create or check the topics declared under topics/",
        description="apply: create the declared topics that are missing "
        "(never alters or deletes). check: report every difference in "
        "existence, partitions, cleanup policy and retention; exit 1 if any.",
    )
    topics.add_argument("action", choices=["apply", "check"])
    topics.set_defaults(func=cmd_topics)

    pub = sub.add_parser(
        "publish",
        help="publish a JSON-lines file of events",
        description="Publish each line as one message, unchanged. The topic is "
        "--topic, else the event's `channel`; the key is its first identifier.",
    )
    pub.add_argument("file", type=Path)
    pub.add_argument("--topic", help="topic for every line (default: from `channel`)")
    pub.set_defaults(func=cmd_publish)

    tail = sub.add_parser(
        "tail",
        help="print an output topic as JSON lines",
        description="Print messages of journey.actions, journey.transitions or "
        "touchpoints.deadletter, one JSON object a line.",
    )
    tail.add_argument("topic", choices=sorted(TAILABLE))
    tail.add_argument("--from-beginning", action="store_true", help="start at the oldest message")
    tail.add_argument("--max", type=int, default=None, help="stop after this many messages")
    tail.add_argument(
        "--idle-timeout",
        type=float,
        default=None,
        help="stop after this many seconds without a message",
    )
    tail.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="only messages whose top-level FIELD equals VALUE (repeatable)",
    )
    tail.set_defaults(func=cmd_tail)

    schemas = sub.add_parser(
        "schemas",
        help="write the JSON Schemas under topics/schemas",
        description="Generate the JSON Schemas of the wire messages from "
        "the models; --check exits 1 when the files are stale.",
    )
    schemas.add_argument("--check", action="store_true")
    schemas.set_defaults(func=cmd_schemas)

    journey = sub.add_parser(
        "journey",
        help="journey file tools: validate, graph, test",
        description="validate FILE: exit 0 for a valid journey file, else 1 with one line "
        "per problem, naming the file and the path inside it. graph FILE: print the journey "
        "as a Mermaid flowchart. test SCENARIO...: run scenario files (or every *.yaml in a "
        "directory) on a simulated clock; one line per scenario, a diff for each failure, "
        "exit 1 if any failed.",
    )
    journey.add_argument("action", choices=["validate", "graph", "test"])
    journey.add_argument("files", type=Path, nargs="+", metavar="FILE")
    journey.set_defaults(func=cmd_journey)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `touchpoint` console script."""
    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except (ValueError, OSError, EmbeddedBrokerError) as exc:
        print(f"touchpoint: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
