"""A table's writes held until its checkpoint commits (stream/commit/writes.py), on stand-ins for a
Faust table and the producer: one changelog record per key, acknowledged before the local store
gets it, with the changelog offsets it reaches."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.structs import TopicPartition

from processor.stream.commit import bundles
from processor.stream.commit.writes import Coalesced

Record = tuple[int, bytes, bytes | None]


class App:
    """What `writes` uses of a Faust app: its producer (Faust's, and aiokafka's under it)."""

    def __init__(self, producer: Any) -> None:
        self.producer = producer


class Batch:
    """aiokafka's record batch builder as `writes.Batches` uses it; full at `capacity`
    records (the real one at a size in bytes, but it too always takes a first record)."""

    capacity = 1000

    def __init__(self) -> None:
        self.records: list[tuple[bytes | None, bytes | None]] = []
        self.closed = False

    def append(self, *, timestamp: None, key: bytes | None, value: bytes | None) -> object:
        assert not self.closed
        if len(self.records) >= self.capacity:
            return None
        self.records.append((key, value))
        return object()  # the real one returns the record's metadata

    def close(self) -> None:
        self.closed = True

    def record_count(self) -> int:
        return len(self.records)


class Producer:
    """A stand-in that is both Faust's producer and aiokafka's under it."""

    def _ensure_producer(self) -> Any:
        return self

    def create_batch(self) -> Batch:
        return Batch()


class Metadata:
    """What Kafka's acknowledgement tells: where the record went."""

    def __init__(self, topic: str, partition: int, offset: int) -> None:
        self.topic_partition = TopicPartition(topic, partition)
        self.offset = offset


class Store(dict[bytes, bytes]):
    """A table's local store: the values, and the changelog offset kept per partition."""

    def __init__(self) -> None:
        super().__init__()
        self.persisted: dict[TopicPartition, int] = {}

    def set_persisted_offset(self, tp: TopicPartition, offset: int) -> None:
        self.persisted[tp] = offset


class Table(Producer):
    """What `Coalesced` uses of a Faust table: the store under `data`, `get`, the app and the
    changelog topic. The table is also the changelog topic's producer."""

    def __init__(self, log: list[Any] | None = None) -> None:
        self.data = Store()
        self.log = log if log is not None else []
        self.app = App(self)
        self.changelog_topic = self
        self.offsets: dict[int, int] = {}

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def get_topic_name(self) -> str:
        return "changelog"

    def _record(self, partition: int, key: bytes, value: bytes | None) -> Metadata:
        self.log.append(("changelog", partition, key, value))
        offset = self.offsets[partition] = self.offsets.get(partition, -1) + 1
        return Metadata("changelog", partition, offset)

    async def send_batch(
        self, batch: Batch, name: str, *, partition: int
    ) -> asyncio.Future[Metadata]:
        """aiokafka's `send_batch`: the batch's first offset."""
        assert name == "changelog"
        assert batch.closed
        fut: asyncio.Future[Metadata] = asyncio.get_running_loop().create_future()
        records = [self._record(partition, key, value) for key, value in batch.records]
        fut.set_result(records[0])
        return fut


def _release(w: Coalesced) -> int:
    return asyncio.run(w.release())


def test_each_key_gets_one_record_with_its_last_value_at_release() -> None:
    table = Table()
    w = Coalesced(table)
    w.at(3)[b"C-1"] = b"a"
    w.at(5)[b"C-2"] = b"x"
    w.at(3)[b"C-1"] = b"b"
    # The agent's reads see every write at once; the store and the changelog wait.
    assert w.at(3).get(b"C-1") == b"b"
    assert w.at(5).get(b"C-2") == b"x"
    assert table.data == {}
    assert table.log == []
    assert w.pending == 2
    assert _release(w) == 2
    assert table.data == {b"C-1": b"b", b"C-2": b"x"}
    assert sorted(table.log) == [("changelog", 3, b"C-1", b"b"), ("changelog", 5, b"C-2", b"x")]
    assert w.pending == 0
    assert _release(w) == 0


def test_the_local_store_gets_a_change_only_after_its_changelog_record_is_acknowledged() -> None:
    table = Table()
    w = Coalesced(table)
    w.at(3)[b"C-1"] = b"a"
    assert asyncio.run(w.acknowledge()) == 1
    # Kafka has it; the local store not yet (a crash now leaves the store behind, never ahead),
    # and the agent's reads and the clock still see the change.
    assert table.log == [("changelog", 3, b"C-1", b"a")]
    assert table.data == {}
    assert table.data.persisted == {}
    assert w.at(3).get(b"C-1") == b"a"
    assert w.unreleased() == {b"C-1": (3, b"a")}
    w.write_local()
    assert table.data == {b"C-1": b"a"}
    assert table.data.persisted == {TopicPartition("changelog", 3): 0}
    assert w.unreleased() == {}


def test_the_store_keeps_each_partitions_last_acknowledged_changelog_offset() -> None:
    table = Table()
    w = Coalesced(table)
    for n in range(3):
        w.at(3)[b"C-%d" % n] = b"a"
    w.at(5)[b"C-9"] = b"x"
    _release(w)
    assert table.data.persisted == {
        TopicPartition("changelog", 3): 2,
        TopicPartition("changelog", 5): 0,
    }
    w.at(5)[b"C-1"] = b"b"
    _release(w)
    assert table.data.persisted[TopicPartition("changelog", 5)] == 1


def test_a_deletion_is_one_tombstone_and_nothing_for_an_absent_key() -> None:
    table = Table()
    table.data[b"C-1"] = b"a"
    w = Coalesced(table)
    w.at(5)[b"C-2"] = b"x"
    assert w.at(5).pop(b"C-2") == b"x"  # written and deleted before the release: a tombstone
    assert w.at(3).pop(b"C-1") == b"a"
    assert w.at(3).pop(b"C-3", b"none") == b"none"  # never there: no record at all
    _release(w)
    assert table.data == {}
    assert sorted(table.log) == [("changelog", 3, b"C-1", None), ("changelog", 5, b"C-2", None)]


def test_bundles_round_trip_and_tell_themselves_from_single_messages() -> None:
    messages = [(b"C-1", b'{"kind":"event"}'), (b"", b""), (b"\x00\xff", bytes(range(256)))]
    value = bundles.pack(messages)
    assert bundles.is_bundle(value)
    assert bundles.unpack(value) == messages
    assert bundles.messages(b"ignored", value) == messages
    assert bundles.messages(b"C-2", b'{"kind":"event"}') == [(b"C-2", b'{"kind":"event"}')]
    assert bundles.messages(b"C-2", None) == []
    for cut in (1, 4, 200, len(value) - len(bundles.MAGIC) - 2):
        with pytest.raises(ValueError, match="truncated"):
            bundles.unpack(value[:-cut])
