"""The bulk restore: a changelog read into RocksDB outside Faust's pipeline must leave exactly
what Faust's own restore would, the last value of every key and no deleted key, with the
persisted offset where Faust's recovery looks for it, and a prefix of the log whenever it stops.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import rocksdict
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from processor import topics as t
from processor.stream.extensions.restore import UNLOGGED, Part, last_offsets, restore

pytestmark = pytest.mark.broker

OFFSET_KEY = b"__faust\0offset__"  # faust.stores.rocksdb.Store.offset_key
PARTITIONS = (0, 3)
KEYS = 300
ROUNDS = 4
DELETED = len(range(0, KEYS, 5))
#: Offsets per partition: every round of every key, then the deletions.
END = ROUNDS * KEYS + DELETED


def _db(path: Path) -> rocksdict.Rdict:
    return rocksdict.Rdict(str(path), options=rocksdict.Options(raw_mode=True))


async def _fill(bootstrap: str) -> dict[int, list[tuple[bytes, bytes | None]]]:
    """Per partition: every key written ROUNDS times, then every fifth key deleted."""
    log: dict[int, list[tuple[bytes, bytes | None]]] = {p: [] for p in PARTITIONS}
    for p in PARTITIONS:
        for r in range(ROUNDS):
            log[p] += [(f"p{p}-k{k}".encode(), f"p{p}-k{k}-v{r}".encode()) for k in range(KEYS)]
        log[p] += [(f"p{p}-k{k}".encode(), None) for k in range(0, KEYS, 5)]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        sent = [
            await producer.send(t.JOURNEY_CHANGELOG, value, key=key, partition=p)
            for p, records in log.items()
            for key, value in records
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
    return log


def _expected(records: list[tuple[bytes, bytes | None]]) -> dict[bytes, bytes]:
    out: dict[bytes, bytes] = {}
    for key, value in records:
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def _contents(db: rocksdict.Rdict) -> dict[bytes, bytes]:
    return {k: v for k, v in db.items() if k != OFFSET_KEY}


@pytest.fixture
def dbs(tmp_path: Path) -> Iterator[dict[int, rocksdict.Rdict]]:
    """An empty raw-mode database per partition, as Faust's store opens them."""
    opened = {p: _db(tmp_path / f"journey-{p}.db") for p in PARTITIONS}
    yield opened
    for db in opened.values():
        db.close()


def _parts(dbs: dict[int, rocksdict.Rdict], starts: dict[int, int]) -> list[Part]:
    return [
        Part(TopicPartition(t.JOURNEY_CHANGELOG, p), db, starts[p], END, OFFSET_KEY)
        for p, db in dbs.items()
    ]


def test_a_changelog_restored_in_bulk_holds_each_keys_last_value_and_the_offset(
    topics_ready: str, dbs: dict[int, rocksdict.Rdict]
) -> None:
    log = asyncio.run(_fill(topics_ready))
    # Partition 3 already holds its first half, as after a clean stop: the restore goes on
    # from the persisted offset (Faust's recovery passes that start).
    half = END // 2
    for key, value in log[3][:half]:
        if value is None:
            del dbs[3][key]
        else:
            dbs[3][key] = value
    dbs[3][OFFSET_KEY] = str(half - 1).encode()
    parts = _parts(dbs, {0: 0, 3: half})

    done = asyncio.run(restore({"bootstrap_servers": topics_ready}, parts, 60.0,
                               committed_only=False))  # fmt: skip

    assert done.complete
    assert done.records == END + (END - half)
    for p in PARTITIONS:
        assert _contents(dbs[p]) == _expected(log[p])
        assert len(_contents(dbs[p])) == KEYS - DELETED
        assert dbs[p][OFFSET_KEY] == str(END - 1).encode()
    assert all(part.applied == END - 1 for part in parts)


def test_a_restore_out_of_time_leaves_a_prefix_with_its_offset_and_goes_on_from_there(
    topics_ready: str, dbs: dict[int, rocksdict.Rdict]
) -> None:
    log = asyncio.run(_fill(topics_ready))
    connection = {"bootstrap_servers": topics_ready}
    parts = _parts(dbs, {0: 0, 3: 0})

    # No time at all, and small fetches: it stops after the first fetch.
    done = asyncio.run(restore(connection, parts, 0.0, committed_only=False,
                               fetch_bytes=2048))  # fmt: skip

    assert not done.complete
    assert 0 < done.records < 2 * END
    applied = {p: part.applied for part, p in zip(parts, PARTITIONS, strict=True)}
    assert any(0 <= a < END - 1 for a in applied.values()), applied
    for p, a in applied.items():
        # Whatever was applied is the log up to `applied`, recorded as the offset.
        assert _contents(dbs[p]) == _expected(log[p][: a + 1])
        assert dbs[p].get(OFFSET_KEY) == (None if a < 0 else str(a).encode())

    # Faust's recovery would go on from the recorded offsets; so does a second restore.
    rest = _parts(dbs, {p: a + 1 for p, a in applied.items()})
    again = asyncio.run(restore(connection, rest, 60.0, committed_only=False))

    assert again.complete
    assert done.records + again.records == 2 * END
    for p in PARTITIONS:
        assert _contents(dbs[p]) == _expected(log[p])
        assert dbs[p][OFFSET_KEY] == str(END - 1).encode()


_KILLED_AFTER_RESTORE = """
import asyncio, os, sys
import rocksdict
from aiokafka import TopicPartition
from processor.stream.extensions.restore import Part, restore

bootstrap, topic, end, key, *paths = sys.argv[1:]
parts = []
for spec in paths:
    partition, path = spec.split("=", 1)
    db = rocksdict.Rdict(path, options=rocksdict.Options(raw_mode=True))
    parts.append(Part(TopicPartition(topic, int(partition)), db, 0, int(end), bytes.fromhex(key)))
done = asyncio.run(restore({"bootstrap_servers": bootstrap}, parts, 60.0, committed_only=False))
os._exit(0 if done.complete else 3)  # no close: as if the worker were killed right after
"""


def test_a_restore_is_on_disk_when_it_returns_though_its_writes_skip_the_log(
    topics_ready: str, tmp_path: Path
) -> None:
    """The bulk writes skip RocksDB's write-ahead log: what `restore` returned from must be on
    disk all the same, or a worker killed after it would come back with a store that lost
    the records its persisted offset says it has."""
    assert UNLOGGED.disable_wal
    log = asyncio.run(_fill(topics_ready))
    paths = {p: tmp_path / f"journey-{p}.db" for p in PARTITIONS}
    specs = [f"{p}={path}" for p, path in paths.items()]
    args = [topics_ready, t.JOURNEY_CHANGELOG, str(END), OFFSET_KEY.hex(), *specs]
    subprocess.run([sys.executable, "-c", _KILLED_AFTER_RESTORE, *args], check=True, timeout=120)

    for p, path in paths.items():
        db = _db(path)
        try:
            assert _contents(db) == _expected(log[p])
            assert db[OFFSET_KEY] == str(END - 1).encode()
        finally:
            db.close()


async def _batched(bootstrap: str, partition: int, sizes: list[int]) -> None:
    """Write record batches of `sizes` records to one changelog partition, as a unit's end
    writes its changelog records (one aiokafka record batch per partition)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for n, size in enumerate(sizes):
            batch = producer.create_batch()
            for i in range(size):
                batch.append(key=f"b{n}-{i}".encode(), value=b"v", timestamp=None)
            batch.close()
            await (await producer.send_batch(batch, t.JOURNEY_CHANGELOG, partition=partition))
    finally:
        await producer.stop()


def test_the_last_offset_of_a_changelog_written_in_record_batches(topics_ready: str) -> None:
    """Where a partition really ends, whatever the broker reports as its high watermark (the
    embedded broker reports one past the first record of the last batch)."""
    asyncio.run(_batched(topics_ready, 1, [5, 3]))
    asyncio.run(_batched(topics_ready, 2, [1]))
    tps = [TopicPartition(t.JOURNEY_CHANGELOG, p) for p in (1, 2, 4)]

    async def measure() -> dict[TopicPartition, int]:
        consumer = AIOKafkaConsumer(bootstrap_servers=topics_ready)
        await consumer.start()
        try:
            reported = {tp: end - 1 for tp, end in (await consumer.end_offsets(tps)).items()}
        finally:
            await consumer.stop()
        return await last_offsets({"bootstrap_servers": topics_ready}, reported)

    assert asyncio.run(measure()) == dict(zip(tps, [7, 0, -1], strict=True))
