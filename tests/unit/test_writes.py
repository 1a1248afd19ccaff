"""Units of work (stream/writes.py) on stand-ins for a Faust table, stream and topic: outputs
acknowledged, then changelog records, then the input's acknowledgement, in that order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from processor.stream import writes
from processor.stream.writes import Coalesced, Unit, send

Record = tuple[int, bytes, bytes | None]


class Table:
    """What `Coalesced` uses of a Faust table: the store under `data`, `get`, the changelog
    topic and the callback that records a delivered changelog offset."""

    def __init__(self, log: list[Any] | None = None) -> None:
        self.data: dict[bytes, bytes] = {}
        self.log = log if log is not None else []
        self.changelog_topic = self
        self.delivered = 0

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    async def send(self, **kw: Any) -> asyncio.Future[None]:
        assert kw["key_serializer"] == kw["value_serializer"] == "raw"
        assert kw["callback"] == self._on_changelog_sent
        self.log.append(("changelog", kw["partition"], kw["key"], kw["value"]))
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        self._on_changelog_sent(fut)
        return fut

    def _on_changelog_sent(self, fut: asyncio.Future[None]) -> None:
        self.delivered += 1


def _release(w: Coalesced) -> int:
    return len(asyncio.run(w.release()))


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
    # Readers see every write at once; only the changelog waits.
    assert table.data == {b"C-1": b"b", b"C-2": b"x"}
    assert w.get(b"C-1") == b"b"
    assert table.log == []
    assert w.pending == 2
    assert _release(w) == 2
    assert sorted(table.log) == [("changelog", 3, b"C-1", b"b"), ("changelog", 5, b"C-2", b"x")]
    assert table.delivered == 2
    assert w.pending == 0
    assert _release(w) == 0


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


class Topic:
    """`send` returns a delivery future, as Faust's does; the test decides when it resolves."""

    def __init__(self, log: list[Any]) -> None:
        self.log = log
        self.pending: list[tuple[asyncio.Future[None], bytes]] = []

    async def send(self, key: bytes | None, value: bytes) -> asyncio.Future[None]:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pending.append((fut, value))
        return fut

    def deliver(self) -> None:
        for fut, value in self.pending:
            self.log.append(("delivered", value))
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
        assert not writes.all_flushed()
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


def test_a_unit_without_a_table_acks_after_its_outputs_and_needs_no_rebuild() -> None:
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
        # Input in hand, outputs not yet acknowledged: no ack; but no table is ahead of its
        # changelog, so a clean stop needs no rebuild.
        assert log == []
        assert unit.in_hand
        assert not unit.keeps_table
        assert writes.all_flushed()
        topic.deliver()
        await _until(lambda: len(log) == 4)
        task.cancel()
        return log

    log = asyncio.run(main())
    assert log == [("delivered", b"routed0"), ("delivered", b"routed1"), ("ack", 0), ("ack", 1)]
