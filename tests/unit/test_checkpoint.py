"""The checkpoint (commit/checkpoint.py) on stand-ins for aiokafka's producer and a store: its
steps in order, records where their keys put them, and no commit after a refused record."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from processor import topics as t
from processor.kafka.partitioner import partition_of
from processor.stream.commit import bundles
from processor.stream.commit.checkpoint import (
    BATCH_OVERHEAD,
    Checkpoint,
    CheckpointFailed,
    Layout,
    OutputTooLarge,
    Step,
)
from tests.unit.test_writes import Batch

LAYOUT = Layout({t.DEADLETTER: 8, t.CUSTOMER_EVENTS: 8, t.IDENTITY_LINKS: 1}, frozenset(
    {t.CUSTOMER_EVENTS, t.IDENTITY_LINKS}
))  # fmt: skip


class Producer:
    """aiokafka's producer as a checkpoint uses it; `refuse` fails a topic's deliveries."""

    def __init__(self, journal: list[str], refuse: str | None = None) -> None:
        self.journal = journal
        self.refuse = refuse
        self.sent: list[tuple[str, int, Batch]] = []

    def create_batch(self) -> Batch:
        return Batch()

    async def send_batch(self, batch: Batch, topic: str, *, partition: int) -> Any:
        self.sent.append((topic, partition, batch))
        delivered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if topic == self.refuse:
            delivered.set_exception(RuntimeError("MessageSizeTooLarge"))
        else:
            delivered.set_result(None)
            self.journal.append(f"acked {topic}")
        return delivered


class Store:
    def __init__(self, journal: list[str]) -> None:
        self.journal = journal

    async def acknowledge(self) -> None:
        self.journal.append("changelog")

    def write_local(self) -> None:
        self.journal.append("store")


class Counter:
    """A Prometheus counter as a checkpoint counts on it: `labels(...)` and `inc(amount)`."""

    def __init__(self, journal: list[str], labels: tuple[str, ...] = ()) -> None:
        self.journal = journal
        self._labels = labels

    def labels(self, *values: str) -> Counter:
        return Counter(self.journal, values)

    def inc(self, amount: float) -> None:
        self.journal.append(f"count {'/'.join(self._labels)} +{amount:g}")


def _checkpoint(producer: Producer, journal: list[str]) -> Checkpoint:
    async def commit(offsets: dict[Any, int]) -> None:
        journal.append(f"commit {sorted(offsets.items())}")

    return Checkpoint(producer, LAYOUT, commit, [Store(journal)])


def test_the_steps_run_in_order_and_commit_past_the_last_input() -> None:
    journal: list[str] = []
    producer = Producer(journal)
    cp = _checkpoint(producer, journal)
    cp.send(t.DEADLETTER, b"k", b"letter")
    events, merges = Counter(journal), Counter(journal)
    cp.count(events, "web")
    cp.consumed(("web", 0), 41)
    cp.count(events, "web")
    cp.count(merges)
    cp.consumed(("web", 0), 42)
    cp.count(events, "email", amount=3)
    cp.consumed(("email", 3), 7)
    assert journal == []  # nothing counted before the records are kept
    asyncio.run(cp.commit())
    assert journal == [
        f"acked {t.DEADLETTER}",
        "changelog",
        "store",
        "count web +2",
        "count  +1",
        "count email +3",
        "commit [(('email', 3), 8), (('web', 0), 43)]",
    ]
    assert cp.step is Step.OFFSETS


def test_records_go_to_their_keys_partitions_and_internal_ones_in_one_bundle_each() -> None:
    journal: list[str] = []
    producer = Producer(journal)
    cp = _checkpoint(producer, journal)
    people = [f"C-{n}".encode() for n in range(40)]
    for key in people:
        cp.send(t.CUSTOMER_EVENTS, key, b"event of " + key)
        cp.send(t.DEADLETTER, key, b"letter of " + key)
    asyncio.run(cp.commit())
    bundled: dict[int, list[tuple[bytes, bytes]]] = {}
    for topic, partition, batch in producer.sent:
        if topic == t.CUSTOMER_EVENTS:
            ((key, value),) = batch.records  # one bundle record per partition
            assert key is None
            assert value is not None
            assert partition not in bundled
            bundled[partition] = bundles.unpack(value)
        else:
            for key, _ in batch.records:
                assert key is not None
                assert partition == partition_of(key, 8)
    for key in people:
        assert (key, b"event of " + key) in bundled[partition_of(key, 8)]
    assert sum(len(messages) for messages in bundled.values()) == len(people)


@pytest.mark.parametrize("refused", [t.DEADLETTER, t.CUSTOMER_EVENTS])
def test_a_refused_record_fails_the_checkpoint_before_anything_is_committed(refused: str) -> None:
    journal: list[str] = []
    cp = _checkpoint(Producer(journal, refuse=refused), journal)
    cp.send(t.DEADLETTER, b"k", b"letter")
    cp.send(t.CUSTOMER_EVENTS, b"C-1", b"event")
    cp.count(Counter(journal), "web")
    cp.consumed(("web", 0), 1)
    with pytest.raises(CheckpointFailed) as failed:
        asyncio.run(cp.commit())
    assert failed.value.step is Step.OPEN
    assert cp.step is Step.OPEN
    assert not any(entry.startswith(("changelog", "store", "count", "commit")) for entry in journal)


def test_records_without_a_key_spread_over_the_partitions() -> None:
    journal: list[str] = []
    producer = Producer(journal)
    cp = _checkpoint(producer, journal)
    for _ in range(16):
        cp.send(t.DEADLETTER, None, b"letter")
    asyncio.run(cp.commit())
    assert {partition for _, partition, _ in producer.sent} == set(range(8))


def test_a_record_larger_than_its_topic_takes_is_refused_before_it_is_kept() -> None:
    layout = Layout({"small.topic": 1}, frozenset(), {"small.topic": 1000 - BATCH_OVERHEAD})
    layout.check("small.topic", b"k", b"v" * (1000 - BATCH_OVERHEAD - 1), "a record")
    with pytest.raises(OutputTooLarge) as refused:
        layout.check(
            "small.topic", b"k", b"v" * (1000 - BATCH_OVERHEAD), "the cart_reminder action"
        )
    assert str(refused.value) == (
        "the cart_reminder action would be a record of 1,001 bytes with its batch; small.topic "
        "takes at most 1,000 (max.message.bytes)"
    )
    layout.check("unlimited.topic", None, b"v" * 10_000_000, "a record")  # Kafka decides
