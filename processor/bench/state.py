"""A million customers in state: the worker's memory with them, and its rebuild from the
changelog after the local store is deleted.

The states are real ones: taken from the journey changelog after a processor run, and copied
under new keys (each to the changelog partition its key belongs to) until there are enough.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from processor import topics as t
from processor.bench.kafka import partitions_of
from processor.bench.worker import Worker
from processor.kafka.partitioner import partition_of

_REBUILT = re.compile(r"timer index rebuilt: (\d+) people .* in ([0-9.]+) s")


async def sample_states(bootstrap: str, limit: int, timeout_s: float = 120.0) -> list[bytes]:
    """Up to `limit` people's latest states from the journey changelog (markers left out)."""
    tps = await partitions_of(bootstrap, [t.JOURNEY_CHANGELOG])
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
        auto_offset_reset="earliest", max_partition_fetch_bytes=8 * 1024 * 1024,
    )  # fmt: skip
    await consumer.start()
    latest: dict[bytes, bytes | None] = {}
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        deadline = time.monotonic() + timeout_s
        while any([await consumer.position(tp) < ends[tp] for tp in tps]):
            if time.monotonic() > deadline:
                raise TimeoutError("could not read the journey changelog to its end")
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for r in records:
                    latest[r.key] = r.value
    finally:
        await consumer.stop()
    states = [v for v in latest.values() if v is not None and not v.startswith(b'{"moved"')]
    return states[:limit]


def key_of(n: int) -> bytes:
    """The n-th synthetic person's key."""
    return f"C-S{n:07d}".encode()


async def fill(
    bootstrap: str,
    samples: list[bytes],
    people: int,
    partitions: int,
    log: Callable[[str], None],
) -> float:
    """Write `people` states to the journey changelog, as the worker would have; seconds."""
    if not samples:
        raise ValueError("no sample states to copy")
    templates = [orjson.loads(s) for s in samples]
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=10, max_batch_size=512 * 1024
    )
    await producer.start()
    started = time.monotonic()
    pending: list[asyncio.Future[object]] = []
    try:
        for n in range(people):
            key = key_of(n)
            state = templates[n % len(templates)]
            state["id"] = key.decode()
            value = orjson.dumps(state)
            part = partition_of(key, partitions)
            pending.append(await producer.send(t.JOURNEY_CHANGELOG, value, key=key, partition=part))
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
            if n and n % 200_000 == 0:
                log(f"  {n:,} states written")
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return time.monotonic() - started


@dataclass
class Recovery:
    """One start of a worker on a filled changelog."""

    ready_s: float
    #: Seconds the timer index rebuild took after recovery, and people with timers, from the log.
    timer_index_s: float | None
    timer_people: int | None
    peak_rss_bytes: int
    notes: list[str] = field(default_factory=list)


#: How a recovery's worker starts: on a new data directory ("new"), on its own with the local
#: store deleted ("store"), or on its own as it is ("kept").
Start = Literal["new", "store", "kept"]


def recover(
    worker: Worker, *, start: Start, settle_s: float, timeout_s: float, kill: bool = False
) -> Recovery:
    """Start the worker as `start` says, time it to /ready, let it settle, measure its peak
    memory, and stop it (with SIGKILL when `kill`)."""
    if start == "store":  # a new web port either way, so a new log file
        worker.start_without_store()
    else:
        worker.start(fresh=start == "new")
    try:
        ready = worker.wait_ready(timeout_s)
        deadline = time.monotonic() + max(settle_s, 120.0)
        index_s = people = None
        while time.monotonic() < deadline:
            text = worker.log_path.read_text(errors="replace")
            m = _REBUILT.search(text)
            if m:
                people, index_s = int(m.group(1)), float(m.group(2))
                break
            time.sleep(0.2)
        time.sleep(settle_s)
        use = worker.usage()
        return Recovery(ready, index_s, people, use.peak_rss_bytes if use else 0)
    finally:
        if kill:
            worker.kill()
        else:
            worker.stop()
