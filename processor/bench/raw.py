"""Contestant (a): a hand-written aiokafka pipe, the ceiling for Python on this broker.

Consume the inbound topics, parse each message, keep state per key in a dict, write one
changelog record per state change, one output per 10 events, and commit after each fetched
batch once its outputs are acknowledged. Run as `python -m processor.bench.raw`; it writes the
result as JSON to `--result`.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import time
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from processor import topics as t

#: The contestant's topics; the benchmark creates them (8 partitions each) before each run.
CHANGELOG = "bench-raw-changelog"
OUTPUT = "bench-raw-output"


async def run(bootstrap: str, group: str, expect: int, max_s: float) -> dict[str, Any]:
    """Process `expect` messages (or stop after `max_s` seconds of processing)."""
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
                    try:
                        event = orjson.loads(r.value) if r.value else None
                    except orjson.JSONDecodeError:
                        event = None
                    if not isinstance(event, dict):
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
    p.add_argument("--result", type=Path, required=True, help="where to write the result")
    args = p.parse_args()
    result = asyncio.run(run(args.bootstrap, args.group, args.expect, args.max_seconds))
    args.result.write_bytes(orjson.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
