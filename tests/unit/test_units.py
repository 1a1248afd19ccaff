"""An agent's records into one checkpoint at a time (commit/units.py), on stand-ins for a Faust
stream, app and table: outputs acknowledged, then changelog records, then the records
acknowledged and their offsets committed at once, in that order; a unit ends when full and when
nothing more waits."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

from processor.stream.commit.checkpoint import Checkpoint, Layout
from processor.stream.commit.units import Positions, Unit
from processor.stream.commit.writes import Coalesced
from tests.unit.test_writes import Batch, Metadata, Table

LAYOUT = Layout({"out": 1}, frozenset())


class Event:
    def __init__(self, n: int) -> None:
        self.n = n
        self.message = SimpleNamespace(tp=("in", 0), offset=n, partition=0)


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


class App:
    """The app's producer (aiokafka's, under Faust's) and its consumer's commit. The producer
    holds each batch's delivery until `deliver()`, or delivers at once when `prompt`."""

    def __init__(self, log: list[Any], prompt: bool = False) -> None:
        self.log = log
        self.prompt = prompt
        self.producer = self
        self.consumer = self
        self.pending: list[tuple[asyncio.Future[Metadata], list[bytes | None]]] = []

    def _ensure_producer(self) -> App:
        return self

    def create_batch(self) -> Batch:
        return Batch()

    async def send_batch(
        self, batch: Batch, name: str, *, partition: int
    ) -> asyncio.Future[Metadata]:
        fut: asyncio.Future[Metadata] = asyncio.get_running_loop().create_future()
        self.pending.append((fut, [value for _, value in batch.records]))
        if self.prompt:
            self.deliver()
        return fut

    def deliver(self) -> None:
        for fut, values in self.pending:
            self.log += [("delivered", value) for value in values]
            fut.set_result(Metadata("out", 0, 0))
        self.pending.clear()

    def add_future(self, coro: Any) -> asyncio.Future[Any]:
        return asyncio.ensure_future(coro)

    async def commit(self, tps: set[Any]) -> bool:
        self.log.append(("commit", sorted(tps)))
        return True


async def _until(predicate: Any) -> None:
    for _ in range(200):
        if predicate():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition not reached")


def test_outputs_then_the_changelog_then_the_records_acknowledged_and_committed() -> None:
    async def main() -> list[Any]:
        log: list[Any] = []
        table, stream, app = Table(log), Stream(log), App(log)
        writes = Coalesced(table)
        unit = Unit("test", app, LAYOUT, (writes,), max_messages=10)

        def handle(cp: Checkpoint, event: Any) -> None:
            writes.at(0)[b"k%d" % (event.n % 2)] = b"v%d" % event.n
            cp.send("out", None, b"out%d" % event.n)

        for n in range(3):
            stream.queue.put_nowait(Event(n))
        task = asyncio.create_task(unit.run(stream, handle))
        # All three taken; the unit ends (the buffer is empty) and waits for its outputs.
        await _until(lambda: len(app.pending) == 1)
        await asyncio.sleep(0.1)  # longer than FLUSH_AFTER_S: nothing may move meanwhile
        assert stream.enable_acks is False
        assert log == []
        app.deliver()
        await _until(lambda: ("commit", [("in", 0)]) in log)
        task.cancel()
        return log

    log = asyncio.run(main())
    assert log[:3] == [("delivered", b"out0"), ("delivered", b"out1"), ("delivered", b"out2")]
    # One record per key, with its last value, after every output and before any ack.
    assert sorted(log[3:5]) == [("changelog", 0, b"k0", b"v2"), ("changelog", 0, b"k1", b"v1")]
    assert log[5:] == [("ack", 0), ("ack", 1), ("ack", 2), ("commit", [("in", 0)])]


def test_a_unit_ends_when_full_and_when_nothing_more_waits() -> None:
    async def main() -> list[Any]:
        log: list[Any] = []
        table, stream, app = Table(log), Stream(log), App(log, prompt=True)
        writes = Coalesced(table)
        unit = Unit("test", app, LAYOUT, (writes,), max_messages=2, commit_every_s=0.01)

        def handle(cp: Checkpoint, event: Any) -> None:
            writes.at(0)[b"k%d" % event.n] = b"v"
            cp.send("out", None, b"out%d" % event.n)

        for n in range(5):
            stream.queue.put_nowait(Event(n))
        task = asyncio.create_task(unit.run(stream, handle))
        await _until(lambda: ("ack", 4) in log)
        # One more record after a pause is a unit of its own.
        stream.queue.put_nowait(Event(5))
        await _until(lambda: ("ack", 5) in log)
        await _until(lambda: log[-1][0] == "commit")
        task.cancel()
        return log

    log = asyncio.run(main())
    assert [e[1] for e in log if e[0] == "ack"] == [0, 1, 2, 3, 4, 5]
    units, changes = [], 0
    for entry in log:
        if entry[0] == "changelog":
            changes += 1
        elif entry[0] == "ack" and changes:
            units.append(changes)
            changes = 0
    # Units of 2, 2, then the rest of the buffer (1), then the late record (1).
    assert units == [2, 2, 1, 1]
    # Every acknowledged record's partition was committed after its acknowledgement.
    assert log[-1] == ("commit", [("in", 0)])


def test_a_record_past_a_skipped_offset_is_found_and_a_seek_back_is_not() -> None:
    positions = Positions()
    a, b = ("customer-events", 0), ("customer-events", 1)
    assert positions.skipped(a, 170) is None  # the first record of a partition: nothing before
    assert positions.skipped(b, 3) is None
    assert positions.skipped(a, 171) is None
    assert positions.skipped(b, 4) is None
    assert positions.skipped(a, 173) == 172  # 172 never came
    assert positions.skipped(a, 100) is None  # read again from an earlier offset
    assert positions.skipped(a, 101) is None
    positions.forget()  # partitions moved: another worker may have read what comes between
    assert positions.skipped(a, 500) is None
    assert positions.skipped(b, 9) is None


def test_a_unit_stops_before_a_record_past_a_skipped_one() -> None:
    class Stopped(Exception):
        pass

    async def main() -> tuple[list[int], list[Any]]:
        log: list[Any] = []
        stream, app = Stream(log), App(log, prompt=True)
        unit = Unit("test", app, LAYOUT, (Coalesced(Table(log)),), max_messages=10)
        stops: list[Any] = []

        def stop(tp: Any, missing: int, offset: int) -> None:
            stops.append((tp, missing, offset))
            raise Stopped  # the worker's process ends here

        unit._stop_for_gap = stop  # type: ignore[method-assign]
        handled: list[int] = []
        for n in (1, 2, 4, 5):
            stream.queue.put_nowait(Event(n))
        with contextlib.suppress(Stopped):
            await unit.run(stream, lambda cp, event: handled.append(event.n))
        return handled, stops

    handled, stops = asyncio.run(main())
    assert handled == [1, 2]  # nothing at or after the record that revealed the gap
    assert stops == [(("in", 0), 3, 4)]
