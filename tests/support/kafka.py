"""Publish to and read from a broker in tests, with plain aiokafka clients."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient


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


async def read_all(
    bootstrap: str, topic: str, *, committed_only: bool = False, timeout_s: float = 120.0
) -> list[tuple[int, int, bytes | None, bytes | None]]:
    """Every record of `topic` up to its current end: (partition, offset, key, value)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        count = len((await admin.describe_topics([topic]))[0]["partitions"])
    finally:
        await admin.close()
    partitions = [TopicPartition(topic, p) for p in range(count)]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
        auto_offset_reset="earliest", max_partition_fetch_bytes=16 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
        isolation_level="read_committed" if committed_only else "read_uncommitted",
    )  # fmt: skip
    await consumer.start()
    out: list[tuple[int, int, bytes | None, bytes | None]] = []
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        deadline = time.monotonic() + timeout_s
        while any([await consumer.position(tp) < ends[tp] for tp in partitions]):
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {topic} to its end in {timeout_s} s")
            for tp, records in (await consumer.getmany(timeout_ms=500, max_records=10_000)).items():
                out.extend((tp.partition, r.offset, r.key, r.value) for r in records)
    finally:
        await consumer.stop()
    return out


async def read_changelog(bootstrap: str, topic: str, timeout_s: float = 10.0) -> dict[bytes, bytes]:
    """The latest value of every key of a table's changelog; deleted keys are left out."""
    latest: dict[bytes | None, bytes | None] = {}
    for _, _, key, value in await read_all(bootstrap, topic, timeout_s=timeout_s):
        latest[key] = value
    return {k: v for k, v in latest.items() if k is not None and v is not None}
