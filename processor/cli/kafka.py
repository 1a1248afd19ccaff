"""Topic and message tools: `topics`, `publish`, `tail` and `schemas`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from processor import topics as t
from processor.cli.common import load_settings, positive_float, positive_int
from processor.cli.progress import progress

TAILABLE = {"actions": t.ACTIONS, "transitions": t.TRANSITIONS, "deadletter": t.DEADLETTER}


def cmd_topics(args: argparse.Namespace) -> int:
    from processor.kafka.tools import apply_topics, check_topics

    settings = load_settings()
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

    now = datetime.now(UTC) if args.now else None
    settings = load_settings()
    with progress(f"publishing {args.file.name}") as done:
        sent = asyncio.run(
            publish(settings, args.file, args.topic, done, now=now, any_topic=args.any_topic)
        )
    print(f"published {sent} message(s) from {args.file}", file=sys.stderr)
    return 0


#: Shortcut options of `tail`, per topic: option -> the field it filters on.
SHORTCUTS = {
    "actions": {"customer": "customer_id", "template": "template", "rule": "rule"},
    "transitions": {"customer": "customer_id", "stage": "to_stage"},
    "deadletter": {"customer": "source.key", "kind": "error.kind", "source": "source.topic"},
}


def tail_filters(args: argparse.Namespace) -> dict[str, str]:
    """--where FIELD=VALUE pairs plus the shortcuts that apply to the topic."""
    filters = {}
    for f in args.where:
        name, sep, value = f.partition("=")
        if not sep:
            raise ValueError(f"--where {f!r}: expected FIELD=VALUE")
        filters[name] = value
    for option, fieldname in SHORTCUTS[args.topic].items():
        value = getattr(args, option, None)
        if value is not None:
            filters[fieldname] = value
    for option in ("template", "rule", "stage", "kind", "source"):
        if getattr(args, option, None) is not None and option not in SHORTCUTS[args.topic]:
            raise ValueError(f"--{option} does not apply to {args.topic}")
    return filters


def cmd_tail(args: argparse.Namespace) -> int:
    import orjson

    from processor.kafka.tools import tail

    filters = tail_filters(args)
    out = sys.stdout.buffer

    def emit(value: bytes) -> None:
        if args.pretty:
            # A value that is not JSON is printed as it is.
            with contextlib.suppress(orjson.JSONDecodeError):
                value = orjson.dumps(orjson.loads(value), option=orjson.OPT_INDENT_2)
        out.write(value + b"\n")
        out.flush()

    asyncio.run(
        tail(
            load_settings(),
            TAILABLE[args.topic],
            from_beginning=args.from_beginning,
            max_messages=args.max,
            idle_timeout_s=args.idle_timeout,
            filters=filters,
            emit=emit,
        )
    )
    return 0


def cmd_deadletter(args: argparse.Namespace) -> int:
    from processor.kafka.tools import replay_deadletters

    def say(line: str) -> None:
        print(line, flush=True)

    settings = load_settings()
    with progress("reading dead letters", unit="letters") as done:
        report = asyncio.run(
            replay_deadletters(settings, args.kind, dry_run=args.dry_run, say=say, progress=done)
        )
    for kind in args.kind:
        verb = "would replay" if args.dry_run else "replayed"
        print(f"{kind}: {verb} {report.replayed[kind]}, refused {report.refused[kind]}")
    return 1 if sum(report.refused.values()) else 0


def cmd_schemas(args: argparse.Namespace) -> int:
    from processor import schemas

    directory = load_settings().topics_dir / "schemas"
    if args.check:
        stale = [directory / name for name in schemas.stale(directory)]
        if schemas.journey_schema_stale():
            stale.append(schemas.JOURNEY_SCHEMA)
        for path in stale:
            print(f"stale: {path}")
        return 1 if stale else 0
    for path in [*schemas.write(directory), schemas.write_journey_schema()]:
        print(f"wrote {path}")
    return 0


def register(sub: Any) -> None:
    """Add the commands to the `touchpoint` parser."""
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
        description="Publish each line as one message, unchanged (unless --now). The topic "
        "is --topic, else the event's `channel`; the key is its first identifier. The whole "
        "file is checked first: if a line cannot be routed, nothing is sent. With --topic, a "
        "line need not be JSON (to try how the worker dead-letters it).",
    )
    pub.add_argument("file", type=Path)
    pub.add_argument("--topic", help="topic for every line (default: from `channel`)")
    pub.add_argument(
        "--any-topic",
        action="store_true",
        help="allow a --topic that is not declared under topics/ (it must exist)",
    )
    pub.add_argument(
        "--now",
        action="store_true",
        help="move every event's occurred_at (a command's requested_at) by one offset, so "
        "that the latest one not in the future happens now; the gaps between them stay. For "
        "sample files: the journey does not act on events older than a step's stale_after",
    )
    pub.set_defaults(func=cmd_publish)

    tail = sub.add_parser(
        "tail",
        help="print an output topic as JSON lines",
        description="Print messages of journey.actions, journey.transitions or "
        "touchpoints.deadletter, one JSON object a line.",
    )
    tail.add_argument("topic", choices=sorted(TAILABLE))
    tail.add_argument("--from-beginning", action="store_true", help="start at the oldest message")
    tail.add_argument(
        "--max", type=positive_int, default=None, help="stop after this many messages"
    )
    tail.add_argument(
        "--idle-timeout",
        type=positive_float,
        default=None,
        help="stop after this many seconds without a message",
    )
    tail.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="only messages whose FIELD (dotted for nested: error.kind) equals VALUE (repeatable)",
    )
    tail.add_argument("--customer", help="customer_id (deadletter: the source key)")
    tail.add_argument("--template", help="actions: this template only")
    tail.add_argument("--rule", help="actions: this rule only")
    tail.add_argument("--stage", help="transitions: into this stage only")
    tail.add_argument("--kind", help="deadletter: this error kind only")
    tail.add_argument("--source", help="deadletter: from this source topic only")
    tail.add_argument("--pretty", action="store_true", help="indented JSON")
    tail.set_defaults(func=cmd_tail)

    from processor.kafka.tools import REPLAY_GROUP_PREFIX
    from processor.messages import ErrorKind

    dl = sub.add_parser(
        "deadletter",
        help="re-publish dead letters to their source topics after a fix",
        description="replay: re-publish the dead letters of the chosen --kind values to their "
        "source topics, each exactly once: the consumer group "
        f"{REPLAY_GROUP_PREFIX}.<kind> remembers (as its committed offset) how far each kind "
        "was replayed, so a second run replays only letters that arrived since. Values kept "
        "in base64 are decoded; a truncated (too large) value is refused with its source "
        "coordinates, and the exit code is 1.",
    )
    dl.add_argument("action", choices=["replay"])
    dl.add_argument(
        "--kind",
        action="append",
        required=True,
        choices=[k.value for k in ErrorKind],
        help="error kind to replay (repeatable)",
    )
    dl.add_argument("--dry-run", action="store_true", help="list, publish and remember nothing")
    dl.set_defaults(func=cmd_deadletter)

    schemas = sub.add_parser(
        "schemas",
        help="write the JSON Schemas of the messages and of the journey file",
        description="Generate the JSON Schemas of the wire messages (topics/schemas/) and of "
        "the journey file (processor/journey/journey.schema.json) from the models; --check "
        "exits 1 when a file is stale.",
    )
    schemas.add_argument("--check", action="store_true")
    schemas.set_defaults(func=cmd_schemas)
