"""Operator tools over plain aiokafka clients: apply/check topics, publish files, tail topics."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from processor import topics as t
from processor.kafka import admin
from processor.kafka.clients import connection_kwargs
from processor.settings import Settings

TOPIC_OF_CHANNEL = {"web": t.WEB, "email": t.EMAIL, "store": t.STORE}
_KEY_ORDER = ("customer_id", "email", "loyalty_id", "anonymous_id")


async def apply_topics(settings: Settings, out: TextIO = sys.stdout) -> list[str]:
    """Create the declared topics that are missing; print what was done."""
    specs = t.load(settings.topics_dir)
    client = AIOKafkaAdminClient(**connection_kwargs(settings))
    await client.start()
    try:
        created = await admin.apply(client, specs, settings.topic_replication_factor)
    finally:
        await client.close()
    for name in created:
        print(f"created {name} ({specs[name].partitions} partitions)", file=out)
    print(f"{len(specs)} topics declared, {len(created)} created", file=out)
    return created


async def check_topics(settings: Settings) -> list[admin.Drift]:
    """Every declared topic that is missing or differs on the broker."""
    specs = t.load(settings.topics_dir)
    client = AIOKafkaAdminClient(**connection_kwargs(settings))
    await client.start()
    try:
        return await admin.drift(client, specs)
    finally:
        await client.close()


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    with path.open("rb") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                yield n, line.strip()


def route(line: bytes, topic: str | None) -> tuple[str, bytes | None]:
    """The topic (given, or from the event's `channel`) and key (its first identifier)."""
    try:
        event = orjson.loads(line)
    except orjson.JSONDecodeError:
        event = None
    if not isinstance(event, dict):
        if topic is None:
            raise ValueError("not a JSON object, and no --topic given")
        return topic, None
    if topic is None:
        channel = event.get("channel")
        if channel not in TOPIC_OF_CHANNEL:
            raise ValueError("no --topic given and `channel` is not web, email or store")
        topic = TOPIC_OF_CHANNEL[channel]
    identity = event.get("identity")
    key = None
    if isinstance(identity, dict):
        key = next((str(identity[k]) for k in _KEY_ORDER if identity.get(k)), None)
    return topic, key.encode() if key else None


async def publish(
    settings: Settings, path: Path, topic: str | None, progress: Callable[[int], None]
) -> int:
    """Publish each line of a JSON-lines file as one message, exactly as written."""
    producer = AIOKafkaProducer(**connection_kwargs(settings), linger_ms=5, acks="all")
    await producer.start()
    sent = 0
    try:
        pending = []
        for n, line in _lines(path):
            try:
                target, key = route(line, topic)
            except ValueError as exc:
                raise ValueError(f"{path}:{n}: {exc}") from exc
            pending.append(await producer.send(target, line, key=key))
            sent += 1
            if sent % 1000 == 0:
                await asyncio.gather(*pending)
                pending.clear()
                progress(sent)
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent


def _matches(value: Any, filters: dict[str, str]) -> bool:
    return isinstance(value, dict) and all(str(value.get(k)) == v for k, v in filters.items())


async def tail(
    settings: Settings,
    topic: str,
    *,
    from_beginning: bool,
    max_messages: int | None,
    idle_timeout_s: float | None,
    filters: dict[str, str],
    emit: Callable[[bytes], None],
) -> int:
    """Print messages of `topic` as JSON lines; stop after `max_messages` or when idle."""
    consumer = AIOKafkaConsumer(
        topic,
        **connection_kwargs(settings),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest" if from_beginning else "latest",
    )
    await consumer.start()
    shown = 0
    try:
        while max_messages is None or shown < max_messages:
            timeout_ms = int((idle_timeout_s or 3600) * 1000)
            batch = await consumer.getmany(timeout_ms=timeout_ms)
            if not batch:
                if idle_timeout_s is not None:
                    break
                continue
            for records in batch.values():
                for record in records:
                    try:
                        value = orjson.loads(record.value) if record.value else None
                    except orjson.JSONDecodeError:
                        value = None
                    if filters and not _matches(value, filters):
                        continue
                    emit(record.value or b"null")
                    shown += 1
                    if max_messages is not None and shown >= max_messages:
                        return shown
    finally:
        await consumer.stop()
    return shown
