"""Send the generator's messages to Kafka on time, or write them to a JSON-lines file."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import orjson
from aiokafka import AIOKafkaProducer

from processor.kafka.clients import connected, connection_kwargs
from processor.settings import Settings
from processor.simulate.generator import SimMessage

#: Acknowledgements are awaited in batches of this many messages (bounded memory).
_BATCH = 1000


@dataclass
class Progress:
    """What was sent so far, for the progress line."""

    sent: int = 0
    started: float = 0.0
    behind_s: float = 0.0

    @property
    def rate(self) -> float:
        """Messages per wall second since the start."""
        elapsed = time.monotonic() - self.started
        return self.sent / elapsed if elapsed > 0 else 0.0


async def publish(
    settings: Settings,
    messages_from: Callable[[datetime], Iterable[SimMessage]],
    *,
    start: datetime | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    progress_every_s: float = 1.0,
) -> Progress:
    """Send the messages `messages_from(start)` makes, each when due: start plus its `send_at`.

    The clock starts (`start` None: now) once the producer is connected, so that the first
    messages are not already late: a message is never sent before its `occurred_at` (start +
    send_at), so none is in the future, and when the broker is slower than the rate,
    messages go out late, not early.
    """
    # Room for a too_large test message a little over the worker's limit.
    max_request = max(1_048_576, 2 * settings.max_event_bytes + 65_536)
    producer = AIOKafkaProducer(
        **connection_kwargs(settings), linger_ms=5, acks="all", max_request_size=max_request
    )
    async with connected(producer, settings, "the simulator's producer"):
        return await _send_due(producer, messages_from, start, on_progress, progress_every_s)


async def _send_due(
    producer: AIOKafkaProducer,
    messages_from: Callable[[datetime], Iterable[SimMessage]],
    start: datetime | None,
    on_progress: Callable[[Progress], None] | None,
    progress_every_s: float,
) -> Progress:
    if start is None:
        start = datetime.now(UTC)
    t0 = time.monotonic() - (datetime.now(UTC) - start).total_seconds()
    messages = messages_from(start)
    progress = Progress(started=time.monotonic())
    last_report = progress.started
    pending: list[asyncio.Future[object]] = []
    for msg in messages:
        wait_s = t0 + msg.send_at - time.monotonic()
        if wait_s > 0:
            await asyncio.sleep(wait_s)
        progress.behind_s = max(0.0, -wait_s)
        pending.append(await producer.send(msg.topic, msg.value, key=msg.key))
        progress.sent += 1
        if len(pending) >= _BATCH:
            await asyncio.gather(*pending)
            pending.clear()
        now = time.monotonic()
        if on_progress is not None and now - last_report >= progress_every_s:
            last_report = now
            on_progress(progress)
    await asyncio.gather(*pending)
    if on_progress is not None:
        on_progress(progress)
    return progress


def write_lines(
    path: Path, messages: Iterable[SimMessage], progress: Callable[[int], None] | None = None
) -> int:
    """Write messages as JSON lines that `touchpoint publish` reads (each names its `channel`).

    Only JSON objects fit this format: a generator for a file must not make `decode` messages.
    """
    n = 0
    with path.open("wb") as f:
        for msg in messages:
            if not msg.value.startswith(b"{"):
                raise ValueError("a JSON-lines file cannot hold a message that is not an object")
            orjson.loads(msg.value)  # the publish tool routes by the parsed `channel`
            f.write(msg.value + b"\n")
            n += 1
            if progress is not None and n % 1000 == 0:
                progress(n)
    return n
