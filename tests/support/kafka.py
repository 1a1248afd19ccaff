"""Publish to and read from a broker in tests, with plain aiokafka clients."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer


async def produce(
    bootstrap: str, messages: Iterable[tuple[str, bytes | None, bytes | None]]
) -> int:
    """Send (topic, key, value) messages and wait until every one is acknowledged."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_request_size=8 * 1024 * 1024
    )
    await producer.start()
    try:
        futures = [await producer.send(topic, value, key=key) for topic, key, value in messages]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return len(futures)


async def read_json(
    bootstrap: str, topic: str, *, expect: int, timeout_s: float, settle_s: float = 2.0
) -> list[dict[str, object]]:
    """Read `topic` from the start until `expect` messages arrived (or the timeout), then keep
    reading for `settle_s` more so that any message beyond the expected ones is seen too."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_bytes=16 * 1024 * 1024,
        max_partition_fetch_bytes=16 * 1024 * 1024,
    )
    await consumer.start()
    found: list[dict[str, object]] = []
    try:
        deadline = time.monotonic() + timeout_s
        settle_until: float | None = None
        while True:
            now = time.monotonic()
            if settle_until is None and (len(found) >= expect or now >= deadline):
                settle_until = now + settle_s
            if settle_until is not None and now >= settle_until:
                break
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                found.extend(orjson.loads(r.value) for r in records)
    finally:
        await consumer.stop()
    return found
