"""Contestant (a): a hand-written aiokafka pipe, the ceiling for Python on this broker.

Consume the inbound topics, parse each message, keep state per key in a dict, write one
changelog record per state change, one output per 10 events, and commit after each fetched
batch once its outputs are acknowledged. With `--validate` each message is decoded and
validated against the contract as ingest does (`check_touchpoint`) instead of only parsed:
what validating alone adds to the pipe. Run as `python -m processor.bench.raw`; it writes the
result as JSON to `--result`.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from processor import topics as t
from processor.bench import stream
from processor.decode import Rejection, check_touchpoint
from processor.stream.agents.deadletters import CHANNEL_OF_TOPIC

#: The contestant's topics; the benchmark creates them (8 partitions each) before each run.
CHANGELOG = "bench-raw-changelog"
OUTPUT = "bench-raw-output"


def _parsed(topic: str, value: bytes | None) -> dict[str, Any] | None:
    """The message as a JSON object, None when it is not one."""
    try:
        event = orjson.loads(value) if value else None
    except orjson.JSONDecodeError:
        return None
    return event if isinstance(event, dict) else None


def _validated(topic: str, value: bytes | None) -> dict[str, Any] | None:
    """The message's type and time, None when it is not a valid touchpoint of its topic."""
    channel = CHANNEL_OF_TOPIC.get(topic)
    if channel is None:
        return None
    event = check_touchpoint(value, channel, datetime.now(UTC), max_bytes=_MAX_BYTES)
    if isinstance(event, Rejection):
        return None
    return {"type": event["type"], "occurred_at": event["occurred_at"]}


#: The event size limit the benchmark gives the workers.
_MAX_BYTES = stream.StreamSpec.max_event_bytes


async def run(
    bootstrap: str, group: str, expect: int, max_s: float, *, validate: bool = False
) -> dict[str, Any]:
    """Process `expect` messages (or stop after `max_s` seconds of processing)."""
    read = _validated if validate else _parsed
    consumer = AIOKafkaConsumer(
        *t.INBOUND,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_bytes=32 * 1024 * 1024,
    )
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=256 * 1024
    )
    await producer.start()
    await consumer.start()
    state: dict[bytes, dict[str, Any]] = {}
    n = invalid = 0
    first_at = cpu0 = 0.0
    try:
        while n < expect:
            batch = await consumer.getmany(timeout_ms=500, max_records=2000)
            if not batch:
                if first_at and time.time() - first_at > max_s:
                    break
                continue
            if not first_at:
                first_at, cpu0 = time.time(), time.process_time()
            pending = []
            for records in batch.values():
                for r in records:
                    n += 1
                    event = read(r.topic, r.value)
                    if event is None:
                        invalid += 1
                        continue
                    key = r.key or b""
                    old = state.get(key)
                    new = {
                        "n": old["n"] + 1 if old else 1,
                        "last": event.get("type"),
                        "at": event.get("occurred_at"),
                    }
                    state[key] = new
                    pending.append(await producer.send(CHANGELOG, orjson.dumps(new), key=key))
                    if n % 10 == 0:
                        out = orjson.dumps({"key": key.decode("utf-8", "replace"), "n": new["n"]})
                        pending.append(await producer.send(OUTPUT, out, key=key))
            await asyncio.gather(*pending)
            await consumer.commit()
            if time.time() - first_at > max_s:
                break
        last_at, cpu1 = time.time(), time.process_time()
    finally:
        await consumer.stop()
        await producer.stop()
    return {
        "messages": n,
        "invalid": invalid,
        "keys": len(state),
        "first_at": first_at,
        "last_at": last_at,
        "cpu_s": cpu1 - cpu0,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--group", required=True)
    p.add_argument("--expect", type=int, required=True)
    p.add_argument("--max-seconds", type=float, default=600.0)
    p.add_argument("--validate", action="store_true",
                   help="validate each message against the contract, as ingest does")  # fmt: skip
    p.add_argument("--result", type=Path, required=True, help="where to write the result")
    args = p.parse_args()
    result = asyncio.run(
        run(args.bootstrap, args.group, args.expect, args.max_seconds, validate=args.validate)
    )
    args.result.write_bytes(orjson.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
