"""Units of work (stream/writes.py) on stand-ins for a Faust table, stream and topic: outputs
acknowledged, then changelog records, then the input's acknowledgement, in that order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka.structs import TopicPartition

from processor.stream import bundles, writes
from processor.stream.writes import Coalesced, Unit, send

Record = tuple[int, bytes, bytes | None]


class App:
    """What `writes` uses of a Faust app: its producer (Faust's, and aiokafka's under it), and
    whether it runs in transactions (exactly-once mode)."""

    def __init__(self, producer: Any, in_transaction: bool = False) -> None:
        self.producer = producer
        self.in_transaction = in_transaction


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
    """What `Coalesced` uses of a Faust table: the store under `data`, `get`, the app, the
    changelog topic, and (exactly-once mode only) the callback that records a delivered
    changelog offset. The table is also the changelog topic's producer."""

    def __init__(self, log: list[Any] | None = None, in_transaction: bool = False) -> None:
        self.data = Store()
        self.log = log if log is not None else []
        self.app = App(self, in_transaction)
        self.changelog_topic = self
        self.offsets: dict[int, int] = {}
        self.delivered = 0

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def get_topic_name(self) -> str:
        return "changelog"

    def _record(self, partition: int, key: bytes, value: bytes | None) -> Metadata:
        self.log.append(("changelog", partition, key, value))
        offset = self.offsets[partition] = self.offsets.get(partition, -1) + 1
        return Metadata("changelog", partition, offset)

    async def send(self, **kw: Any) -> asyncio.Future[Metadata]:
        """The topic's `send`, with Faust's callback (exactly-once mode only)."""
        fut: asyncio.Future[Metadata] = asyncio.get_running_loop().create_future()
        assert self.app.in_transaction
        assert kw["key_serializer"] == kw["value_serializer"] == "raw"
        assert kw["callback"] == self._on_changelog_sent
        fut.set_result(self._record(kw["partition"], kw["key"], kw["value"]))
        self._on_changelog_sent(fut)
        return fut

    async def send_batch(
        self, batch: Batch, name: str, *, partition: int
    ) -> asyncio.Future[Metadata]:
        """aiokafka's `send_batch` (outside transactions): the batch's first offset."""
        assert name == "changelog"
        assert not self.app.in_transaction
        assert batch.closed
        fut: asyncio.Future[Metadata] = asyncio.get_running_loop().create_future()
        records = [self._record(partition, key, value) for key, value in batch.records]
        fut.set_result(records[0])
        return fut

    def _on_changelog_sent(self, fut: asyncio.Future[Metadata]) -> None:
        self.delivered += 1


def _release(w: Coalesced) -> int:
    return asyncio.run(w.release())


def _writes(table: Table, partition: list[int]) -> Coalesced:
    return Coalesced(table, partition_of=lambda: partition[0])


def test_each_key_gets_one_record_with_its_last_value_at_release() -> None:
    table, partition = Table(), [3]
    w = _writes(table, partition)
    w[b"C-1"] = b"a"
    partition[0] = 5
    w[b"C-2"] = b"x"
    partition[0] = 3
    w[b"C-1"] = b"b"
    # The agent's reads see every write at once; the store and the changelog wait.
    assert w.get(b"C-1") == b"b"
    assert w.get(b"C-2") == b"x"
    assert table.data == {}
    assert table.log == []
    assert w.pending == 2
    assert _release(w) == 2
    assert table.data == {b"C-1": b"b", b"C-2": b"x"}
    assert sorted(table.log) == [("changelog", 3, b"C-1", b"b"), ("changelog", 5, b"C-2", b"x")]
    assert w.pending == 0
    assert _release(w) == 0


def test_the_local_store_gets_a_change_only_after_its_changelog_record_is_acknowledged() -> None:
    table, partition = Table(), [3]
    w = _writes(table, partition)
    w[b"C-1"] = b"a"
    assert asyncio.run(w.acknowledge()) == 1
    # Kafka has it; the local store not yet (a crash now leaves the store behind, never ahead),
    # and the agent's reads and the clock still see the change.
    assert table.log == [("changelog", 3, b"C-1", b"a")]
    assert table.data == {}
    assert table.data.persisted == {}
    assert w.get(b"C-1") == b"a"
    assert w.unreleased() == {b"C-1": (3, b"a")}
    w.write_local()
    assert table.data == {b"C-1": b"a"}
    assert table.data.persisted == {TopicPartition("changelog", 3): 0}
    assert w.unreleased() == {}


def test_the_store_keeps_each_partitions_last_acknowledged_changelog_offset() -> None:
    table, partition = Table(), [3]
    w = _writes(table, partition)
    for n in range(3):
        w[b"C-%d" % n] = b"a"
    partition[0] = 5
    w[b"C-9"] = b"x"
    _release(w)
    assert table.data.persisted == {
        TopicPartition("changelog", 3): 2,
        TopicPartition("changelog", 5): 0,
    }
    w[b"C-1"] = b"b"
    _release(w)
    assert table.data.persisted[TopicPartition("changelog", 5)] == 1


def test_in_exactly_once_mode_changelog_records_take_fausts_way() -> None:
    table = Table(in_transaction=True)
    w = _writes(table, [2])
    w[b"C-1"] = b"a"
    w[b"C-2"] = b"b"
    assert _release(w) == 2
    # Faust's callback keeps the offsets (until the transaction commits), not the release.
    assert table.delivered == 2
    assert table.data.persisted == {}
    assert sorted(table.log) == [("changelog", 2, b"C-1", b"a"), ("changelog", 2, b"C-2", b"b")]


def test_a_deletion_is_one_tombstone_and_nothing_for_an_absent_key() -> None:
    table, partition = Table(), [5]
    table.data[b"C-1"] = b"a"
    w = _writes(table, partition)
    w[b"C-2"] = b"x"
    assert w.pop(b"C-2") == b"x"  # written and deleted before the release: the tombstone remains
    partition[0] = 3
    assert w.pop(b"C-1") == b"a"
    assert w.pop(b"C-3", b"none") == b"none"  # never there: no record at all
    _release(w)
    assert table.data == {}
    assert sorted(table.log) == [("changelog", 3, b"C-1", None), ("changelog", 5, b"C-2", None)]


class Event:
    def __init__(self, n: int) -> None:
        self.n = n


class Stream:
    """A Faust stream's surface as the unit uses it: `events()`, `ack()`, `enable_acks` and
    the agent buffer `channel.queue`, here filled from a list the test controls."""

    def __init__(self, log: list[Any]) -> None:
        self.log = log
        self.enable_acks = True
        self.queue: asyncio.Queue[Event] = asyncio.Queue()
        self.channel = self

    async def events(self) -> AsyncIterator[Event]:
        while True:
            yield await self.queue.get()

    async def ack(self, event: Event) -> bool:
        self.log.append(("ack", event.n))
        return True


class Topic(Producer):
    """A topic whose app's producer it is: `send` and `send_batch` return a delivery future,
    as the producer's do; the test decides when they resolve."""

    def __init__(self, log: list[Any]) -> None:
        self.log = log
        self.app = App(self)
        self.pending: list[tuple[asyncio.Future[None], list[bytes]]] = []

    def get_topic_name(self) -> str:
        return "out"

    async def send(
        self, name: str, key: bytes | None, value: bytes, partition: int | None, *_: Any
    ) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pending.append((fut, [value]))
        return fut

    async def send_batch(self, batch: Batch, name: str, *, partition: int) -> asyncio.Future[None]:
        assert batch.closed
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        values = [value for _, value in batch.records]
        self.pending.append((fut, [v for v in values if v is not None]))
        return fut

    def deliver(self) -> None:
        for fut, values in self.pending:
            self.log += [("delivered", value) for value in values]
            fut.set_result(None)
        self.pending.clear()


async def _until(predicate: Any) -> None:
    for _ in range(200):
        if predicate():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition not reached")


def test_outputs_are_acknowledged_before_the_changelog_and_the_input() -> None:
    async def main() -> list[Any]:
        log: list[Any] = []
        table, stream, topic = Table(log), Stream(log), Topic(log)
        partition = [0]
        w = _writes(table, partition)
        unit = Unit("test", w, max_messages=10)

        async def agent() -> None:
            async for event in unit.events(stream):
                w[b"k%d" % (event.n % 2)] = b"v%d" % event.n
                await send(topic, None, b"out%d" % event.n)

        for n in range(3):
            stream.queue.put_nowait(Event(n))
        task = asyncio.create_task(agent())
        # All three taken; the unit ends (the buffer is empty) and waits for its outputs.
        await _until(lambda: len(topic.pending) == 3)
        await asyncio.sleep(0.1)  # longer than FLUSH_AFTER_S: nothing may move meanwhile
        assert stream.enable_acks is False
        assert unit.in_hand
        assert log == []
        topic.deliver()
        await _until(lambda: len(log) == 8)
        assert not unit.in_hand
        task.cancel()
        return log

    log = asyncio.run(main())
    assert log[:3] == [("delivered", b"out0"), ("delivered", b"out1"), ("delivered", b"out2")]
    # One record per key, with its last value, after every output and before any ack.
    assert sorted(log[3:5]) == [("changelog", 0, b"k0", b"v2"), ("changelog", 0, b"k1", b"v1")]
    assert log[5:] == [("ack", 0), ("ack", 1), ("ack", 2)]


def test_a_unit_ends_when_full_and_when_nothing_more_waits() -> None:
    async def main() -> tuple[list[Any], list[Any]]:
        log: list[Any] = []
        table, stream, topic = Table(log), Stream(log), Topic(log)
        w = _writes(table, [0])
        unit = Unit("test", w, max_messages=2)

        async def agent() -> None:
            async for event in unit.events(stream):
                w[b"k%d" % event.n] = b"v"
                await send(topic, None, b"out%d" % event.n)
                topic.deliver()

        for n in range(5):
            stream.queue.put_nowait(Event(n))
        task = asyncio.create_task(agent())
        await _until(lambda: ("ack", 4) in log)
        acks_first = [e for e in log if e[0] == "ack"]
        # One more message after a pause is a unit of its own.
        stream.queue.put_nowait(Event(5))
        await _until(lambda: ("ack", 5) in log)
        task.cancel()
        return log, acks_first

    log, acks = asyncio.run(main())
    assert [n for _, n in acks] == [0, 1, 2, 3, 4]
    changelog_counts = []
    count = 0
    for entry in log:
        if entry[0] == "changelog":
            count += 1
        elif entry[0] == "ack" and count:
            changelog_counts.append(count)
            count = 0
    # Units of 2, 2, then the rest of the buffer (1), then the late message (1).
    assert changelog_counts == [2, 2, 1, 1]


def test_a_unit_without_a_table_acks_after_its_outputs() -> None:
    async def main() -> list[Any]:
        log: list[Any] = []
        stream, topic = Stream(log), Topic(log)
        unit = Unit("ingest", None, max_messages=10)

        async def agent() -> None:
            async for event in unit.events(stream):
                await send(topic, None, b"routed%d" % event.n)

        for n in range(2):
            stream.queue.put_nowait(Event(n))
        task = asyncio.create_task(agent())
        await _until(lambda: len(topic.pending) == 2)
        await asyncio.sleep(0.1)
        # Input in hand, outputs not yet acknowledged: no ack.
        assert log == []
        assert unit.in_hand
        topic.deliver()
        await _until(lambda: len(log) == 4)
        task.cancel()
        return log

    log = asyncio.run(main())
    assert log == [("delivered", b"routed0"), ("delivered", b"routed1"), ("ack", 0), ("ack", 1)]


class PartitionedTopic(Topic):
    """A topic whose records carry the partition the sender chose."""

    async def send(
        self, name: str, key: bytes | None, value: bytes, partition: int | None, *_: Any
    ) -> asyncio.Future[None]:
        self.log.append(("sent", partition, value))
        return await super().send(name, key, value, partition)

    async def send_batch(self, batch: Batch, name: str, *, partition: int) -> asyncio.Future[None]:
        self.log += [("sent", partition, value) for _, value in batch.records]
        return await super().send_batch(batch, name, partition=partition)


def test_a_unit_sends_a_bundled_topic_as_one_record_per_partition_in_order() -> None:
    keys = [b"C-%d" % n for n in range(40)]
    partition_of = {key: writes.partition_of(key, 4) for key in keys}

    async def main() -> tuple[list[Any], bool]:
        log: list[Any] = []
        stream, topic, other = Stream(log), PartitionedTopic(log), Topic(log)
        writes.bundle(topic, 4)
        unit = Unit("test", None, max_messages=100)
        in_hand = []

        async def agent() -> None:
            async for event in unit.events(stream):
                key = keys[event.n]
                await send(topic, key, b"%s:%d" % (key, event.n))
                await send(other, key, b"plain%d" % event.n)  # not bundled: sent at once
                in_hand.append(unit.in_hand)

        for n in range(len(keys)):
            stream.queue.put_nowait(Event(n))
        task = asyncio.create_task(agent())
        await _until(lambda: len(topic.pending) >= 1 and len(other.pending) == len(keys))
        topic.deliver()
        other.deliver()
        await _until(lambda: ("ack", len(keys) - 1) in log)
        task.cancel()
        return log, all(in_hand)

    log, in_hand = asyncio.run(main())
    assert in_hand
    records = [(partition, value) for kind, partition, value in
               (e for e in log if e[0] == "sent")]  # fmt: skip
    # One record per partition that got messages, each a bundle of its messages in order.
    assert sorted(p for p, _ in records) == sorted(set(partition_of.values()))
    for partition, value in records:
        assert bundles.is_bundle(value)
        got = bundles.unpack(value)
        want = [(k, b"%s:%d" % (k, n)) for n, k in enumerate(keys) if partition_of[k] == partition]
        assert got == want
    # Every bundle is delivered before any input is acknowledged.
    first_ack = next(i for i, e in enumerate(log) if e[0] == "ack")
    assert sum(1 for e in log[:first_ack] if e[0] == "delivered") == len(records) + len(keys)


def test_a_bundle_that_would_grow_past_its_limit_starts_another(monkeypatch: Any) -> None:
    monkeypatch.setattr(bundles, "MAX_BYTES", 100)
    unit = Unit("test", None, max_messages=10)
    topic = object()
    for n in range(6):
        unit.bundle(topic, 0, b"k", b"%030d" % n)  # 8 + 1 + 30 bytes each: two per bundle
    unit.bundle(topic, 1, b"k", b"x" * 500)  # larger than the limit: a bundle of its own
    sizes = [(p, len(bundles.unpack(b.value()))) for _, p, b in unit._bundles]
    assert sizes == [(0, 2), (0, 2), (0, 2), (1, 1)]
    values = [v for _, p, b in unit._bundles if p == 0 for _, v in bundles.unpack(b.value())]
    assert values == [b"%030d" % n for n in range(6)]


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


def test_partition_of_is_the_producers_choice() -> None:
    from aiokafka.partitioner import DefaultPartitioner

    choose = DefaultPartitioner()
    for n in range(200):
        key = b"C-%d" % n
        assert writes.partition_of(key, 8) == choose(key, list(range(8)), [0])
    # What the Java client's partitioner gives (Utils.toPositive(Utils.murmur2(key)) % 8,
    # kafka-clients 4.1.2), so other producers of these keys agree.
    assert [writes.partition_of(k, 8) for k in (b"C-1", b"C-2", b"anon:ck-1")] == [7, 2, 7]


def test_a_keyed_topics_messages_go_to_the_producers_partition_for_their_key() -> None:
    async def main() -> list[Any]:
        log: list[Any] = []
        topic, unkeyed = PartitionedTopic(log), PartitionedTopic(log)
        writes.keyed(topic, 6)
        for n in range(50):
            await send(topic, b"C-%d" % n, b"%d" % n)
        await send(topic, None, b"no key")  # the producer chooses
        await send(unkeyed, b"C-1", b"unkeyed")  # not registered: the producer chooses
        return log

    sent = [(p, v) for _, p, v in asyncio.run(main())]
    assert sent[:50] == [(writes.partition_of(b"C-%d" % n, 6), b"%d" % n) for n in range(50)]
    assert len({p for p, _ in sent[:50]}) == 6
    assert sent[50:] == [(None, b"no key"), (None, b"unkeyed")]


def test_a_unit_sends_a_keyed_topic_at_its_end_in_one_batch_per_partition(
    monkeypatch: Any,
) -> None:
    monkeypatch.setattr(Batch, "capacity", 4)
    keys = [b"C-%d" % (n % 7) for n in range(30)]  # several messages per key, in order

    async def main() -> tuple[list[Any], list[bool], list[list[Any]]]:
        log: list[Any] = []
        stream, topic = Stream(log), PartitionedTopic(log)
        writes.keyed(topic, 3)
        unit = Unit("test", None, max_messages=100)
        in_hand, batches = [], []

        async def agent() -> None:
            async for event in unit.events(stream):
                await send(topic, keys[event.n], b"%d" % event.n)
                in_hand.append(unit.in_hand)
                # Nothing reaches the producer before the unit's end.
                assert not [e for e in log if e[0] == "sent"]

        for n in range(len(keys)):
            stream.queue.put_nowait(Event(n))
        task = asyncio.create_task(agent())
        await _until(lambda: len(topic.pending) > 0)
        await asyncio.sleep(0.1)
        assert not [e for e in log if e[0] == "ack"]  # not before Kafka acknowledged them
        batches.extend(list(values) for _, values in topic.pending)
        topic.deliver()
        await _until(lambda: ("ack", len(keys) - 1) in log)
        task.cancel()
        return log, in_hand, batches

    log, in_hand, batches = asyncio.run(main())
    assert all(in_hand)
    sent = [(p, v) for kind, p, v in (e for e in log if e[0] == "sent")]
    for partition in range(3):
        want = [b"%d" % n for n, k in enumerate(keys) if writes.partition_of(k, 3) == partition]
        assert [v for p, v in sent if p == partition] == want  # in the order sent
    assert sorted(v for _, v in sent) == sorted(b"%d" % n for n in range(len(keys)))
    # Full batches started others: at most 4 records each, one future per batch.
    assert all(1 <= len(b) <= 4 for b in batches)
    assert len(batches) == sum(-(-len(list(g)) // 4) for g in
                               ([v for p, v in sent if p == q] for q in range(3)))  # fmt: skip
    first_ack = next(i for i, e in enumerate(log) if e[0] == "ack")
    assert sum(1 for e in log[:first_ack] if e[0] == "delivered") == len(keys)


def test_outside_a_units_work_a_keyed_message_goes_to_the_producer_at_once() -> None:
    async def main() -> list[Any]:
        log: list[Any] = []
        topic = PartitionedTopic(log)
        writes.keyed(topic, 3)
        unit = Unit("idle", None, max_messages=10)
        writes._unit.set(unit)  # a unit, but no message of it in hand
        await send(topic, b"C-1", b"now")
        assert not unit.batches
        return log

    assert asyncio.run(main()) == [("sent", writes.partition_of(b"C-1", 3), b"now")]


def test_a_record_larger_than_its_topic_takes_is_refused_before_it_is_sent() -> None:
    writes.limit_records("small.topic", 1000)
    writes.check("small.topic", b"k", b"v" * (1000 - 128 - 1))
    with pytest.raises(writes.OutputTooLarge) as refused:
        writes.check("small.topic", b"k", b"v" * (1000 - 128), "the cart_reminder action")
    assert str(refused.value) == (
        "the cart_reminder action would be a record of 1,001 bytes with its batch; small.topic "
        "takes at most 1,000 (max.message.bytes)"
    )
    writes.check("unlimited.topic", None, b"v" * 10_000_000)  # no limit known: Kafka decides
