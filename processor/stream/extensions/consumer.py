"""The worker's Faust consumer: short fetch waits, a plain call to hand a message over when
nothing can make it wait, seeks with the flow stopped, and a group place kept across restarts."""

from __future__ import annotations

from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka
from mode.services import WaitResults

from processor.stream.extensions import internals
from processor.stream.extensions.membership import Membership

#: Faust asks every fetch to wait up to 1.5 s for data (hard-coded). Apache Kafka answers a
#: fetch as soon as data arrives, but the embedded broker waits out the whole time, and at
#: moderate rates every hop (inbound, identity, customer events) then cost hundreds of
#: milliseconds: the benchmark's latency run measured a p99 of 1.6 s from publish to action.
#: Shorter is not better there either: every fetch lists each partition's stored batches, and
#: at 1,150 events/s the broker's CPU ran out sooner with 50 ms (p99 767 and 800 ms) than with
#: 100 ms (583 and 612 ms) or 150 ms (563 ms); at 661/s 50 and 100 ms measured alike.
FETCH_MAX_WAIT_MS = 100


class WorkerConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's consumer thread, whose fetches wait at most FETCH_MAX_WAIT_MS and whose group
    membership outlives the process when the app keeps one (stream/extensions/membership.py)."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        internals.set_fetch_max_wait(consumer, FETCH_MAX_WAIT_MS)
        return consumer

    async def on_start(self) -> None:
        await super().on_start()  # the consumer started; it joins once Faust subscribes
        membership: Membership | None = getattr(self.consumer.app, "membership", None)
        if membership is not None:
            membership.resume(internals.group_coordinator(internals.worker_consumer(self)))


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
