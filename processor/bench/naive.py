"""Contestant (b): a naive Faust agent, as one would first write it.

One agent over the inbound topics that parses each message, writes the key's state to a
changelogged table and awaits one send per event. Faust's defaults otherwise (memory store).
With `--empty` the agent does nothing with a message but count it, on the processor's own
consumer (stream/app.py: its fetch wait and hand-over): the most that an agent consuming one
Faust record per event can drain on this machine and broker.
Run as `python -m processor.bench.naive`; it stops after `--expect` messages or `--seconds` of
processing, whichever comes first, and writes the result as JSON to `--result`.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

import faust
import orjson

from processor import topics as t
from processor.bench.progress import Progress, arguments
from processor.stream.extensions.consumer import WorkerConsumer

OUTPUT = "bench-naive-output"


def app_id(run: str) -> str:
    """The Faust app id (and consumer group) of one run; its table changelog derives from it."""
    return f"bench-naive-{run}"


def changelog(run: str) -> str:
    """The table's changelog topic of one run (Faust names it from the app id)."""
    return f"{app_id(run)}-state-changelog"


def main() -> int:
    p = arguments(__doc__)
    p.add_argument("--empty", action="store_true", help="count the messages, nothing else")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    asyncio.set_event_loop(asyncio.new_event_loop())
    raw: dict[str, Any] = {
        "key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw",
    }  # fmt: skip
    app = faust.App(
        app_id(args.run),
        broker=f"kafka://{args.bootstrap}",
        store="memory://",
        datadir=args.datadir,
        autodiscover=False,
        topic_disable_leader=True,
        topic_partitions=8,
        consumer_auto_offset_reset="earliest",
        broker_rebalance_timeout=3.0,
        broker_session_timeout=10.0,
        broker_heartbeat_interval=3.0,
        web_enabled=False,
    )
    if args.empty:
        app.transport.Consumer = WorkerConsumer  # type: ignore[misc]
    source = app.topic(*t.INBOUND, allow_empty=True, **raw)
    output = app.topic(OUTPUT, partitions=8, **raw)
    table = app.Table("state", partitions=8, key_type=bytes, value_type=bytes)
    progress = Progress(args.result)

    @app.agent(source, name="naive")
    async def naive(stream: Any) -> None:
        async for event in stream.events():
            progress.one()
            if args.empty:
                if progress.n >= args.expect:
                    progress.finish()
                continue
            try:
                parsed = orjson.loads(event.value) if event.value else None
            except orjson.JSONDecodeError:
                parsed = None
            key = event.key or b""
            if isinstance(parsed, dict):
                old = table.get(key)
                count = orjson.loads(old)["n"] + 1 if old is not None else 1
                new = {"n": count, "last": parsed.get("type"), "at": parsed.get("occurred_at")}
                table[key] = orjson.dumps(new)
            await output.send(key=key, value=event.value or b"")
            if progress.n >= args.expect:
                progress.finish()

    @app.timer(interval=0.2)  # type: ignore[untyped-decorator]
    async def _deadline() -> None:
        if progress.seconds() >= args.seconds:
            progress.finish()

    worker = faust.Worker(app, loglevel="WARNING", quiet=True)
    worker.execute_from_commandline()
    return 0


if __name__ == "__main__":
    sys.exit(main())
