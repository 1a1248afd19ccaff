"""The worker's Faust consumer: short fetch waits, a plain call to hand a message over when
nothing can make it wait, seeks with the flow stopped, the internal topics' records in offset
order, and a group place kept across restarts."""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka
from mode.services import WaitResults

from processor import topics as t
from processor.stream.extensions import internals
from processor.stream.extensions.membership import Membership

log = logging.getLogger(__name__)

#: Faust asks every fetch to wait up to 1.5 s for data (hard-coded). Apache Kafka answers a
#: fetch as soon as data arrives, but the embedded broker waits out the whole time, and at
#: moderate rates every hop (inbound, identity, customer events) then cost hundreds of
#: milliseconds: the benchmark's latency run measured a p99 of 1.6 s from publish to action.
#: Shorter is not better there either: every fetch lists each partition's stored batches, and
#: at 1,150 events/s the broker's CPU ran out sooner with 50 ms (p99 767 and 800 ms) than with
#: 100 ms (583 and 612 ms) or 150 ms (563 ms); at 661/s 50 and 100 ms measured alike.
FETCH_MAX_WAIT_MS = 100


#: The topics this worker's producers write a record at every offset of (no transactions, no
#: compaction), which the agents read.
INTERNAL = frozenset({t.CUSTOMER_EVENTS, t.IDENTITY_LINKS, t.IDENTITY_ROUTES})
#: How many times in a row a partition is read again from an offset the broker skipped before
#: its records go on as fetched, and the agents' units stop the worker at the gap instead
#: (stream/commit/units.py `Positions`).
READS_AGAIN = 50


class InOrder:
    """The internal topics' records as their partitions hold them: one at every offset.

    The embedded broker was seen to hand out a record of a partition past one it had not
    served (docs/reliability.md), which Faust would take for a compacted topic's gap and
    commit past. Of a fetch, each partition's records from such a gap on are held back before
    Faust sees them, and the partition is read again from the first offset missing; Apache
    Kafka serves every partition in order, and nothing changes there. Partitions that move
    are forgotten (Faust seeks them to their committed offsets next).
    """

    def __init__(self, topics: Collection[str] = INTERNAL) -> None:
        self._topics = topics
        #: Partition -> the offset of the record that should come next.
        self._next: dict[Any, int] = {}
        #: Partition -> (the offset read again, how many times in a row).
        self._again: dict[Any, tuple[int, int]] = {}

    def take(
        self, fetched: Mapping[Any, Sequence[Any]]
    ) -> tuple[dict[Any, Sequence[Any]], dict[Any, int]]:
        """The records of a fetch to hand on, and the partitions to read again from an offset.
        A partition that starts before where it was (a seek back) is followed from there."""
        kept: dict[Any, Sequence[Any]] = {}
        again: dict[Any, int] = {}
        for tp, records in fetched.items():
            if tp.topic not in self._topics or not records:
                kept[tp] = records
                continue
            want = min(self._next.get(tp, records[0].offset), records[0].offset)
            n = 0
            for record in records:
                if record.offset != want:
                    break
                want, n = want + 1, n + 1
            if n < len(records) and self._read_again(tp, want):
                again[tp] = want
                records = records[:n]
            else:
                self._again.pop(tp, None)
            if records:
                kept[tp] = records
            self._next[tp] = want if tp in again else records[-1].offset + 1
        return kept, again

    def _read_again(self, tp: Any, offset: int) -> bool:
        last, times = self._again.get(tp, (offset, 0))
        times = times + 1 if last == offset else 1
        if times > READS_AGAIN:
            self._again.pop(tp, None)
            return False
        self._again[tp] = (offset, times)
        return True

    def forget(self) -> None:
        """Partitions moved."""
        self._next.clear()
        self._again.clear()


class WorkerConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's consumer thread, whose fetches wait at most FETCH_MAX_WAIT_MS, whose internal
    topics' records come in offset order (`InOrder`), and whose group membership outlives the
    process when the app keeps one (stream/extensions/membership.py)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.in_order = InOrder()

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        internals.set_fetch_max_wait(consumer, FETCH_MAX_WAIT_MS)
        return consumer

    async def on_start(self) -> None:
        await super().on_start()  # the consumer started; it joins once Faust subscribes
        membership: Membership | None = getattr(self.consumer.app, "membership", None)
        if membership is not None:
            membership.resume(internals.group_coordinator(internals.worker_consumer(self)))

    async def _fetch_records(
        self,
        consumer: Any,
        active_partitions: Any,
        timeout: float | None = None,  # noqa: ASYNC109 (Faust's parameters)
        max_records: int | None = None,
    ) -> Any:
        fetched = await super()._fetch_records(
            consumer, active_partitions, timeout=timeout, max_records=max_records
        )
        if not fetched:
            return fetched
        kept, again = self.in_order.take(fetched)
        for tp, offset in again.items():
            log.warning("%s[%s]: the broker skipped offset %s; reading it again",
                        tp.topic, tp.partition, offset)  # fmt: skip
            consumer.seek(tp, offset)
        return kept

    async def on_partitions_revoked(self, revoked: Any) -> None:
        self.in_order.forget()
        await super().on_partitions_revoked(revoked)

    async def on_partitions_assigned(self, assigned: Any, generation_id: int = 0) -> None:
        self.in_order.forget()
        await super().on_partitions_assigned(assigned, generation_id)


class WorkerConsumer(faust_aiokafka.Consumer):
    """The worker's consumer: short fetch waits, a plain call to hand a message over when
    nothing can make it wait, and seeks with the flow stopped."""

    def _new_consumer_thread(self) -> Any:
        return WorkerConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def wait_first(self, *coros: Any, timeout: Any = None) -> Any:  # noqa: ASYNC109
        """Faust's drain loop hands every fetched message to the agents' buffers with
        `wait_first(callback(message), suspend_flow.wait())`: a task and three more futures per
        message, so that a rebalance can abandon a hand-over that has to wait. Most hand-overs
        wait for nothing: those are awaited directly, a plain call. In the benchmark's quick
        run this took 11 % off the CPU per event and 55 ms off the p99 latency.
        """
        if len(coros) == 2 and timeout is None and self._hands_over_at_once(coros[1]):
            handover, flow_wait = coros
            flow_wait.close()  # never awaited
            return WaitResults([handover], [await handover], False)
        return await super().wait_first(*coros, timeout=timeout)

    def _hands_over_at_once(self, other: Any) -> bool:
        """Is `other` the drain loop's `suspend_flow.wait()`, and would the hand-over it races
        finish without waiting? It waits only while the flow is stopped or suspended (a
        rebalance), while the producer's buffer is over its limit, or for room in a full agent
        buffer; nothing can change that before it runs, as nothing else runs in between."""
        frame = getattr(other, "cr_frame", None)
        if frame is None or frame.f_locals.get("self") is not self.suspend_flow:
            return False
        app = self.app
        buffer = app.producer.buffer
        return (
            not self.suspend_flow.is_set()
            and app.flow_control.is_active()
            and buffer.size <= buffer.max_messages
            and not any(channel.queue.full() for channel in app.topics)
        )

    async def perform_seek(self) -> None:
        """Seek to the committed offsets with the flow stopped.

        When recovery completes, Faust resumes the stream partitions and only then seeks them
        to their committed offsets. A batch fetched in between was still being handed to the
        agents while the seek reset the read offsets, and a few messages at the seam were
        never delivered in that process: the agents went on with later messages of the same
        partition. Nothing was committed past them, but a person's later events were processed
        before earlier ones (measured: a gap at the seam of most partitions after each
        restart). With the flow stopped, the batch in hand is dropped and fetched again from
        the committed offsets, in order.
        """
        was_active = self.flow_active
        self.stop_flow()
        try:
            await super().perform_seek()
        finally:
            if was_active:
                self.resume_flow()
