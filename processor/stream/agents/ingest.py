"""Ingest: inbound messages read in batches, decoded and validated once, routed or dead-lettered.

Ingest keeps no table, so it needs none of Faust's per-record stream machinery (its stream
iteration, acknowledgements and hand-over cost more than the decoding itself). It is a service
of the worker that owns an aiokafka consumer in a consumer group of its own
(`topics.INGEST_GROUP`) on the inbound topics: it takes what one fetch returned (at most
`TOUCHPOINT_BATCH_MAX` messages), handles each message oldest first (stream/agents/ordering.py) into
one `Checkpoint`, and has the batch's offsets committed once Kafka acknowledged everything made
for it (stream/commit/checkpoint.py), beside the loop (stream/commit/offsets.py). A rebalance
waits for the batch in hand and commits what is pending before the partitions move; a crash
leaves the batches since the last commit uncommitted, and they are handled again (the journey
drops the events it has seen).

On its first start in a cluster where the workers' own group committed the inbound topics (as
workers before ingest had its own group did), ingest starts each partition where that group
left it, not at the oldest retained message.
"""

from __future__ import annotations

import asyncio
import logging
import os
from datetime import UTC, datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from mode import Service

from processor import logs
from processor import topics as t
from processor.decode import Rejection, check_touchpoint, decode_control
from processor.events import ControlCommand
from processor.identity.graph import KIND_PREFIX, nodes_of_json
from processor.kafka.clients import connection_kwargs
from processor.stream.agents import deadletters
from processor.stream.agents.envelope import Kind, Source, pack
from processor.stream.agents.ordering import oldest_first
from processor.stream.app import MAX_REQUEST_BYTES, PRODUCER_LINGER_S, Runtime
from processor.stream.commit.checkpoint import EXIT_FAILED, Checkpoint, OutputTooLarge
from processor.stream.commit.offsets import Committer
from processor.stream.extensions import internals
from processor.stream.extensions.consumer import FETCH_MAX_WAIT_MS
from processor.stream.extensions.membership import Membership

log = logging.getLogger(__name__)

#: Where ingest keeps its place in its consumer group (stream/extensions/membership.py).
MEMBER_FILE = "ingest.member"


def _source(record: Any) -> Source:
    """The coordinates of an aiokafka record (its timestamp is in milliseconds already)."""
    return Source(record.topic, record.partition, record.offset, record.key, record.timestamp)


def handle_inbound(rt: Runtime, cp: Checkpoint, record: Any) -> None:
    """One inbound message ends in exactly one place: routed onwards, or a dead letter.

    Routing: an event with two or more identifiers, and every erase command, may change who is
    who, so the identity-links topic (one partition, one writer of the graph) sees it. A
    customer id is always its own person, so an event that carries one needs no look-up: it goes
    straight to its person on customer-events, and if it carries other identifiers too, a `link`
    message with just its identity goes to identity-links for the graph. Only an event with
    several identifiers and no customer id waits for the link agent to name its person. Any
    other single identifier goes to its identity-routes partition, which knows which person it
    belongs to now.
    """
    src = _source(record)
    label = deadletters.label_of(src.topic)
    channel = deadletters.CHANNEL_OF_TOPIC.get(src.topic)
    cp.count(rt.metrics.messages_consumed, label)
    now = datetime.now(UTC)
    limit = rt.settings.max_event_bytes
    result: dict[str, Any] | ControlCommand | Rejection
    if channel is None:
        result = decode_control(record.value, now, max_bytes=limit)
    else:
        result = check_touchpoint(record.value, channel, now, max_bytes=limit)
    if isinstance(result, Rejection):
        deadletters.send(rt, cp, result, record.value, src, label)
        return
    if isinstance(result, ControlCommand):
        payload = orjson.Fragment(result.model_dump_json())
        kind, named = result.identifier
        node = KIND_PREFIX[kind] + named
        cp.send(t.IDENTITY_LINKS, node.encode(), pack(Kind.control, payload, label, src))
        return
    cp.count(rt.metrics.events_received, label, result["type"].value)
    identity = result["identity"]
    nodes = nodes_of_json(identity)
    value = pack(Kind.event, result, label, src)
    customer = identity["customer_id"]  # a customer id is its own key on customer-events
    if customer is not None:
        topic, key = t.CUSTOMER_EVENTS, customer
    else:
        topic, key = (t.IDENTITY_LINKS if len(nodes) > 1 else t.IDENTITY_ROUTES), nodes[0]
    # The only message here that can be large: it must fit the internal topic before it goes
    # (a TOUCHPOINT_MAX_EVENT_BYTES above that topic's limit makes it `too_large`).
    routed = key.encode()
    try:
        cp.check(topic, routed, value, "the validated event")
    except OutputTooLarge as exc:
        deadletters.send(rt, cp, deadletters.too_large(exc), record.value, src, label)
        return
    cp.send(topic, routed, value)
    if customer is not None and len(nodes) > 1:
        # The identifiers it states, as its JSON does.
        link = {"identity": identity, "occurred_at": result["occurred_at"]}
        cp.send(t.IDENTITY_LINKS, nodes[0].encode(), pack(Kind.link, link, label, src))


def _contained(rt: Runtime, cp: Checkpoint, record: Any) -> None:
    """`handle_inbound`; a message whose handling raised (a bug) is dead-lettered instead of
    lost or stopping the worker."""
    try:
        handle_inbound(rt, cp, record)
    except Exception as exc:
        where = logs.record_fields(record.topic, record.partition, record.offset)
        log.error("ingest failed for %s[%s]@%s", record.topic, record.partition, record.offset,
                  exc_info=exc, extra=where)  # fmt: skip
        rt.metrics.processing_errors.labels("ingest").inc()
        label = deadletters.label_of(record.topic)
        deadletters.send(rt, cp, deadletters.internal(exc), record.value, _source(record), label)


class Ingest(Service):
    """The worker's ingest: its consumer, its producer and the loop of batches."""

    def __init__(self, rt: Runtime, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.rt = rt
        self.consumer: AIOKafkaConsumer | None = None
        self.producer: AIOKafkaProducer | None = None
        #: Held while a batch is in hand; a rebalance and the stop wait for it.
        self.batch_lock = asyncio.Lock()
        #: topic-partition -> the next offset to read as committed, for the lag.
        self.committed: dict[Any, int] = {}
        self.committer = Committer(
            "ingest", self._commit_offsets, rt.settings.commit_interval_s, spawn=self.add_future
        )
        #: Has the group given ingest its partitions (False again while a rebalance runs)?
        self.assigned = False

    async def on_start(self) -> None:
        s = self.rt.settings
        conn = connection_kwargs(s)
        self.producer = AIOKafkaProducer(
            **conn,
            acks="all",
            linger_ms=int(PRODUCER_LINGER_S * 1000),
            max_request_size=MAX_REQUEST_BYTES,
        )
        self.consumer = AIOKafkaConsumer(
            **conn,
            group_id=t.INGEST_GROUP,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
            session_timeout_ms=int(s.session_timeout_s * 1000),
            heartbeat_interval_ms=int(min(3.0, s.session_timeout_s / 3) * 1000),
            rebalance_timeout_ms=int(s.rebalance_timeout_s * 1000),
        )
        await self.producer.start()
        await self.consumer.start()
        Membership(s.data_dir, MEMBER_FILE).resume(internals.group_coordinator(self.consumer))
        self.consumer.subscribe([*t.INBOUND, t.CONTROL], listener=_Rebalance(self))
        self.add_future(self._run())

    async def on_stop(self) -> None:
        # The batch in hand is committed first; the loop takes no further one.
        await self.batch_lock.acquire()
        await self.committer.flush()
        if self.consumer is not None:
            await self.consumer.stop()
        if self.producer is not None:
            await self.producer.stop()

    async def _run(self) -> None:
        """The loop of batches. Ingest that stopped while the worker runs would leave every
        inbound message unread: anything unexpected (a refused record, a bug outside a
        message's handling) stops the worker at once, without committing the batch in hand."""
        try:
            await self._batches()
        except Exception:
            log.critical(
                "ingest stopped; stopping the worker without committing the batch in hand "
                "(the restarted worker reads it again)",
                exc_info=True,
            )
            logging.shutdown()
            os._exit(EXIT_FAILED)

    async def _batches(self) -> None:
        consumer, producer = self.consumer, self.producer
        assert consumer is not None
        assert producer is not None
        rt, batch_max = self.rt, self.rt.settings.batch_max
        while not self.should_stop:
            try:
                fetched = await consumer.getmany(
                    timeout_ms=FETCH_MAX_WAIT_MS, max_records=batch_max
                )
            except KafkaError as exc:  # the broker away: aiokafka reconnects
                log.warning("ingest: fetching failed (%s); trying again", exc)
                await asyncio.sleep(1.0)
                continue
            if not fetched:
                continue
            # The fetch waits out a rebalance under way, so the records are this worker's; a
            # rebalance that began since then waits for this lock (_Rebalance) and so for the
            # batch's commit.
            async with self.batch_lock:
                if self.should_stop:
                    return  # not committed: the next owner reads the batch again
                cp = Checkpoint(producer, rt.layout, self._acknowledged)
                for tp, record in oldest_first(fetched):
                    _contained(rt, cp, record)
                    cp.consumed(tp, record.offset)
                # CheckpointFailed (a record Kafka refused) stops the worker: see _run.
                await cp.commit()

    async def _acknowledged(self, offsets: dict[Any, int]) -> None:
        """The checkpoint's last step: everything made for the batch is acknowledged."""
        self.committer.add(offsets)

    async def _commit_offsets(self, offsets: dict[Any, int]) -> None:
        assert self.consumer is not None
        try:
            await self.consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            # The partitions moved (this worker missed a rebalance): their next owner reads
            # the batch again, and the journey drops what it has seen.
            log.warning("ingest: the batch's offsets were not committed: %s", exc)
            return
        self.committed.update(offsets)

    async def lag(self) -> dict[tuple[str, int], int]:
        """Messages behind each assigned partition's end not yet committed."""
        consumer = self.consumer
        if consumer is None:
            return {}
        tps = list(consumer.assignment())
        if not tps:
            return {}
        ends = await consumer.end_offsets(tps)
        out = {}
        for tp in tps:
            done = self.committed.get(tp)
            if done is None:
                done = await consumer.position(tp)
            out[(tp.topic, tp.partition)] = max(0, ends[tp] - done)
        return out

    async def adopt_offsets(self, assigned: set[Any]) -> None:
        """Start each newly assigned partition at this group's committed offset; where it has
        none, at the workers' own group's (see the module's docstring)."""
        consumer = self.consumer
        assert consumer is not None
        fresh = []
        for tp in assigned:
            done = await consumer.committed(tp)
            if done is None:
                fresh.append(tp)
            else:
                self.committed[tp] = done
        if not fresh:
            return
        before = AIOKafkaConsumer(**connection_kwargs(self.rt.settings), group_id=t.APP_ID)
        await before.start()  # never joins: it only reads that group's committed offsets
        try:
            for tp in fresh:
                done = await before.committed(tp)
                if done is not None:
                    consumer.seek(tp, done)
                    log.info("ingest: %s starts at %d, where %s left it", tp, done, t.APP_ID)
        finally:
            await before.stop()


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, ingest: Ingest) -> None:
        self.ingest = ingest

    async def on_partitions_revoked(self, revoked: Any) -> None:
        if self.ingest.should_stop:  # stopping: the stop holds the lock, nothing is in hand
            return
        self.ingest.assigned = False
        # The batch in hand, and every batch before it, is committed before the partitions move.
        async with self.ingest.batch_lock:
            await self.ingest.committer.flush()
            for tp in revoked:
                self.ingest.committed.pop(tp, None)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        await self.ingest.adopt_offsets(set(assigned))
        self.ingest.assigned = True
