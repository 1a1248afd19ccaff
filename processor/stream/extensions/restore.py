"""Restoring tables from their changelogs in bulk, ahead of Faust's own recovery.

Faust restores a table by passing every changelog record through its consumer pipeline (a
message, an event, a queue put and get, a buffer) before it writes a batch to RocksDB: about
7,000 records/s on the benchmark's machine, so a worker with a million people in state took
over two minutes to become ready after its local store was lost (a crash mark, a new disk, a
partition that moved). A plain consumer reads the same changelog at well over 50,000 records/s.

So recovery is done in two steps. When Faust has worked out where each active changelog
partition's recovery starts (the offset persisted in the partition's RocksDB database, or the
start of the log) and where it ends (the high watermark), `BulkRecovery`
(stream/extensions/recovery.py) first reads those partitions with a plain aiokafka consumer and
writes them to RocksDB in write batches. Each
batch carries the partition's new persisted offset, Faust's own key for it, so the database
holds exactly a prefix of the changelog at every moment, and Faust's recovery is told the new
start. It then finds nothing left to read, or only what the bulk step did not get to.

The bulk writes skip RocksDB's write-ahead log (a quarter of the restore's CPU on the
benchmark's machine), and the restore flushes every database it wrote to before it returns: a
crash before that loses whole memtables, each holding its batches' records with their persisted
offset, so the database still holds a prefix of the changelog; and the worker's own writes,
which go through the log, never land on top of bulk writes that a crash could take back.

The bulk step stops early, leaving the rest to Faust, when it runs out of time: Faust gives
each step of its recovery `broker_request_timeout` (90 s by default) and treats a step that
takes longer as a stopped service, so a worker would never become ready. Standby partitions,
the memory store, and tables on other stores are left to Faust.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import rocksdict
from aiokafka import AIOKafkaConsumer, TopicPartition

log = logging.getLogger(__name__)

#: The share of Faust's per-step timeout the bulk step may take; the rest is Faust's.
TIME_SHARE = 0.7
#: Progress is logged this often on long restores.
PROGRESS_EVERY_S = 5.0
#: Give up on a partition that yields nothing for this long before its end (Faust goes on).
STALL_S = 10.0


#: Bulk writes skip the write-ahead log; `restore` flushes what they wrote before it returns.
UNLOGGED = rocksdict.WriteOptions()
# A property at run time; rocksdict's stubs declare a method.
UNLOGGED.disable_wal = True  # type: ignore[method-assign,assignment]


@dataclass
class Part:
    """One changelog partition to restore: its database, and the offsets to read."""

    tp: TopicPartition
    db: Any
    #: The first offset to read, and the end (the high watermark: one past the last record).
    start: int
    end: int
    offset_key: bytes
    #: The last offset applied to the database (start - 1 until a batch is written).
    applied: int = field(init=False)

    def __post_init__(self) -> None:
        self.applied = self.start - 1

    @property
    def done(self) -> bool:
        return self.applied >= self.end - 1


@dataclass
class Restored:
    records: int
    seconds: float
    complete: bool


def apply(part: Part, records: list[Any], last_offset: int) -> int:
    """Write one fetched batch and the partition's persisted offset, atomically; returns how
    many records were written (a changelog record without a key is not Faust's and is skipped).
    A record without a value is a deletion."""
    batch = rocksdict.WriteBatch(raw_mode=True)
    n = 0
    for r in records:
        if r.key is None:
            continue
        if r.value is None:
            batch.delete(r.key)
        else:
            batch.put(r.key, r.value)
        n += 1
    batch.put(part.offset_key, str(last_offset).encode())
    part.db.write(batch, UNLOGGED)
    part.applied = last_offset
    return n


async def restore(
    connection: Mapping[str, Any],
    parts: list[Part],
    budget_s: float,
    *,
    committed_only: bool,
    fetch_bytes: int = 8 * 1024 * 1024,
) -> Restored:
    """Read every part from `start` to `end` into its database; after `budget_s` seconds,
    stop at the end of the fetch in hand. `fetch_bytes`: the most one fetch returns per
    partition."""
    began = time.monotonic()
    total = sum(p.end - p.start for p in parts)
    log.info("bulk restore: reading ~%s changelog records of %d partitions", f"{total:,}",
             len(parts))  # fmt: skip
    consumer = AIOKafkaConsumer(
        **connection,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=fetch_bytes,
        fetch_max_bytes=64 * 1024 * 1024,
        isolation_level="read_committed" if committed_only else "read_uncommitted",
    )
    await consumer.start()
    by_tp = {p.tp: p for p in parts}
    records = 0
    try:
        consumer.assign(list(by_tp))
        for p in parts:
            consumer.seek(p.tp, p.start)
        deadline = began + budget_s
        shown = heard = began
        while True:
            pending = [p.tp for p in parts if not p.done]
            if not pending:
                break
            fetched = await consumer.getmany(*pending, timeout_ms=200)
            for tp, batch in fetched.items():
                part = by_tp[tp]
                if batch and batch[-1].offset >= part.end:
                    # Written after recovery began. Faust's own recovery stops at the high
                    # watermark it measured too, and its consistency check forbids more.
                    batch = [r for r in batch if r.offset < part.end]
                if batch:
                    records += apply(part, batch, batch[-1].offset)
                    heard = time.monotonic()
            for tp in pending:
                # Past the last record without one at end - 1: compacted away, or a
                # transaction marker. Everything before the end is in the database.
                part = by_tp[tp]
                if not part.done and await consumer.position(tp) >= part.end:
                    apply(part, [], part.end - 1)
            if time.monotonic() - shown > PROGRESS_EVERY_S:
                shown = time.monotonic()
                rate = records / max(shown - began, 1e-9)
                log.info(
                    "bulk restore: %s of ~%s records (%s/s)",
                    f"{records:,}",
                    f"{total:,}",
                    f"{rate:,.0f}",
                )
            now = time.monotonic()
            if (now > deadline or now - heard > STALL_S) and not all(p.done for p in parts):
                why = "out of time" if now > deadline else "no records arrived"
                log.warning(
                    "bulk restore stopped (%s) after %s of ~%s records; Faust's recovery "
                    "reads the rest",
                    why,
                    f"{records:,}",
                    f"{total:,}",
                )
                return Restored(records, now - began, False)
    finally:
        await consumer.stop()
        _flush(parts)
    seconds = time.monotonic() - began
    log.info("bulk restore: %s records in %.1f s (%s/s)", f"{records:,}", seconds,
             f"{records / max(seconds, 1e-9):,.0f}")  # fmt: skip
    return Restored(records, seconds, True)


def _flush(parts: list[Part]) -> None:
    """Make the unlogged bulk writes durable: every written database's memtables to disk."""
    for part in parts:
        if part.applied >= part.start:
            part.db.flush(True)


async def last_offsets(
    connection: Mapping[str, Any], reported: Mapping[TopicPartition, int], wait_s: float = 2.0
) -> dict[TopicPartition, int]:
    """The offset of each partition's last record, where the broker reports `reported` (its
    high watermark - 1; -1 for an empty partition).

    Apache Kafka's high watermark is one past the last record. The embedded broker (Tansu)
    reports one past the *first* record of the last record batch, and the worker writes its
    changelogs in batches of many records: taken at its word, a recovery would stop short of
    the batch's other records (a rebuilt table lost them) and the offset the store persisted
    (the batch's last) looks ahead of the log (Faust's ConsistencyError, so a restarted worker
    never came back). One fetch from the reported last offset reads that record's whole batch,
    which says where the log really ends, on any broker. A partition that yields nothing in
    `wait_s` (its last record compacted away or a transaction marker) keeps the reported offset.
    """
    todo = {tp: last for tp, last in reported.items() if last >= 0}
    found = dict(reported)
    if not todo:
        return found
    consumer = AIOKafkaConsumer(
        **connection, group_id=None, enable_auto_commit=False, fetch_max_wait_ms=50
    )
    await consumer.start()
    try:
        consumer.assign(list(todo))
        for tp, last in todo.items():
            consumer.seek(tp, last)
        deadline = time.monotonic() + wait_s
        while todo and time.monotonic() < deadline:
            fetched = await consumer.getmany(*todo, timeout_ms=100)
            for tp, records in fetched.items():
                if records:
                    found[tp] = max(found[tp], records[-1].offset)
                    todo.pop(tp, None)
            for tp, last in list(todo.items()):
                if await consumer.position(tp) > last:
                    todo.pop(tp)
    finally:
        await consumer.stop()
    return found
