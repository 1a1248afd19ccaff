"""Broker chores for the benchmark: publish the stream, recreate topics, move a group's offsets."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from processor.bench.stream import Message

#: Acknowledgements are awaited in batches of this many messages.
_BATCH = 5000
_MAX_REQUEST = 8 * 1024 * 1024


@dataclass
class Sent:
    """What a publish did: how many messages, how long, and (if asked) when each event went."""

    messages: int = 0
    seconds: float = 0.0
    #: event_id -> epoch seconds of its first send (paced runs only).
    at: dict[str, float] = field(default_factory=dict)


async def publish(
    bootstrap: str,
    messages: Iterable[Message],
    *,
    transform: Callable[[bytes], bytes] | None = None,
    rate: float | None = None,
    record: Callable[[bytes], str | None] | None = None,
    log: Callable[[str], None] | None = None,
    total: int | None = None,
) -> Sent:
    """Send `messages` (at most `rate` a second when given), then wait for every ack.

    `record(value)` names the event a message carries; its first send time is kept.
    """
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=5,
        max_batch_size=256 * 1024,
        max_request_size=_MAX_REQUEST,
    )
    await producer.start()
    sent = Sent()
    started = time.monotonic()
    last_log = started
    pending: list[asyncio.Future[object]] = []
    try:
        for topic, key, value in messages:
            if rate is not None:
                wait = started + sent.messages / rate - time.monotonic()
                if wait > 0.002:
                    await asyncio.sleep(wait)
            if transform is not None:
                value = transform(value)
            if record is not None:
                eid = record(value)
                if eid is not None and eid not in sent.at:
                    sent.at[eid] = time.time()
            pending.append(await producer.send(topic, value, key=key))
            sent.messages += 1
            if len(pending) >= _BATCH:
                await asyncio.gather(*pending)
                pending.clear()
            now = time.monotonic()
            if log is not None and now - last_log >= 5:
                last_log = now
                of = f" of {total:,}" if total else ""
                rate_now = sent.messages / (now - started)
                log(f"  published {sent.messages:,}{of} ({rate_now:,.0f}/s)")
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    sent.seconds = time.monotonic() - started
    return sent


async def recreate(bootstrap: str, topics: dict[str, tuple[int, dict[str, str]]]) -> None:
    """Delete these topics (if they exist) and create them empty: name -> (partitions, config)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)
    await admin.start()
    try:
        present = set(await admin.list_topics()) & set(topics)
        if present:
            await admin.delete_topics(sorted(present))
            deadline = time.monotonic() + 30
            while set(await admin.list_topics()) & present:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"topics not deleted after 30 s: {sorted(present)}")
                await asyncio.sleep(0.1)
        await admin.create_topics(
            [NewTopic(n, p, 1, topic_configs=dict(c)) for n, (p, c) in sorted(topics.items())]
        )
        deadline = time.monotonic() + 30
        while True:
            seen = {
                m["topic"]: len(m["partitions"])
                for m in await admin.describe_topics(sorted(topics))
                if m.get("error_code", 0) == 0
            }
            if all(seen.get(n) == p for n, (p, _) in topics.items()):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"recreated topics not visible after 30 s: {sorted(topics)}")
            await asyncio.sleep(0.1)
    finally:
        await admin.close()


async def delete(bootstrap: str, names: Iterable[str]) -> None:
    """Delete the topics among `names` that exist (frees the broker's memory)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)
    await admin.start()
    try:
        present = set(await admin.list_topics()) & set(names)
        if present:
            await admin.delete_topics(sorted(present))
    finally:
        await admin.close()


async def partitions_of(bootstrap: str, topics: Iterable[str]) -> list[TopicPartition]:
    """Every partition of these topics."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        metas = await admin.describe_topics(sorted(topics))
    finally:
        await admin.close()
    return [TopicPartition(m["topic"], p["partition"]) for m in metas for p in m["partitions"]]


async def end_offsets(bootstrap: str, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
    """The next offset of each partition."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        return dict(await consumer.end_offsets(tps))
    finally:
        await consumer.stop()
