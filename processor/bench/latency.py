"""Publish-to-action latency: the stream published at a fixed rate to running workers."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer

from processor import topics as t
from processor.bench import kafka, stream
from processor.bench.worker import Worker, check_alive, summed
from processor.journey.definition import Journey

_EVENT_ID = re.compile(rb'"event_id":"([^"]+)"')


def immediate_templates(journey: Journey) -> set[str]:
    """Templates of steps that act on the event itself (no wait, no follow-up delay): only
    their actions measure the way from publish to action, not a timer."""
    return {s.template for s in journey.steps if s.template and s.wait is None and s.after is None}


def _event_id(value: bytes) -> str | None:
    m = _EVENT_ID.search(value)
    return m.group(1).decode() if m else None


@dataclass
class Latency:
    """Publish-to-action latencies (seconds) of one paced run."""

    rate: float
    messages: int
    achieved_rate: float
    #: publish → the action record's timestamp (the worker handed it to its producer).
    emitted: list[float]
    #: publish → the action read by a downstream consumer.
    received: list[float]
    actions: int


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), nearest rank; 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


async def paced(
    bootstrap: str,
    path: Path,
    workers: list[Worker],
    *,
    rate: float,
    count: int,
    templates: set[str],
    log: Callable[[str], None],
    settle_s: float = 3.0,
    timeout_s: float = 600.0,
) -> Latency:
    """Publish the stream's first `count` messages at `rate` a second, restamped to now, and
    time every immediate action they cause."""
    restamp = stream.Restamp(stream.last_s_of(path, count), datetime.now(UTC))
    consumer = AIOKafkaConsumer(
        t.ACTIONS,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=20,
    )
    await consumer.start()
    seen: list[tuple[str, str, float, float]] = []  # trigger, template, emitted, received
    stop = asyncio.Event()

    async def read() -> None:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=100)
            now = time.time()
            for records in batch.values():
                for r in records:
                    a = orjson.loads(r.value)
                    seen.append((a["trigger_event_id"], a["template"], r.timestamp / 1000, now))

    reader = asyncio.create_task(read())
    try:
        sent = await kafka.publish(
            bootstrap,
            stream.read(path, count),
            transform=restamp,
            rate=rate,
            record=_event_id,
            log=log,
            total=count,
        )
        log(f"  published {sent.messages:,} at {sent.messages / sent.seconds:,.0f}/s; draining")
        deadline = time.monotonic() + timeout_s
        while True:
            check_alive(workers)
            c = await asyncio.to_thread(summed, workers)
            consumed = c["touchpoint_messages_consumed_total"]
            valid = c["touchpoint_events_received_total"]
            processed = c["touchpoint_events_processed_total"]
            if consumed >= count and processed >= valid:
                break
            if time.monotonic() >= deadline:
                log(
                    f"  not drained after {timeout_s:.0f} s: {consumed:,.0f} of {count:,} "
                    f"messages consumed, {processed:,.0f} of {valid:,.0f} events processed, "
                    f"{c['touchpoint_deadletters_total']:,.0f} dead letters"
                )
                break
            await asyncio.sleep(0.2)
        await asyncio.sleep(settle_s)
    finally:
        stop.set()
        await reader
        await consumer.stop()
    emitted, received = [], []
    for trigger, template, at, got in seen:
        published = sent.at.get(trigger)
        if published is None or template not in templates:
            continue
        emitted.append(max(0.0, at - published))
        received.append(max(0.0, got - published))
    return Latency(
        rate=rate,
        messages=sent.messages,
        achieved_rate=sent.messages / sent.seconds if sent.seconds else 0.0,
        emitted=emitted,
        received=received,
        actions=len(seen),
    )
