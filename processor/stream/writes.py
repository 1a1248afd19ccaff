"""Units of work: what an agent sent for its messages, then its table changes, then the offsets.

A table change and the messages sent for the same input (actions, transitions, re-keyed events,
alias updates) are separate Kafka writes, not one transaction, and the producer batches each
partition on its own. Were the changelog record acknowledged and an output not, a crash would
leave the input recorded in the state (its `event_id` in `seen`, a link in the graph) and its
output unsent: the replay after the restart would find nothing left to do.

So every agent works in units. Within a unit, the agent's own reads see every table change at
once (the next message of the same key included), but the change waits, coalesced per key
(Kafka Streams' record cache), for the unit's end to reach the local store and the changelog.
At the end of a unit:

1. every message sent for the unit is awaited until Kafka acknowledged it;
2. then the changed keys' changelog records are sent and awaited in the same way;
3. then the local store gets the changes, one RocksDB write batch per partition that also sets
   the changelog offset they reach (`Coalesced.write_local`);
4. then the unit's input messages are acknowledged, for Faust to commit their offsets.

Readers outside the agent (the customer API, the timer clock) see a unit's changes when it
ends, at most `FLUSH_AFTER_S` plus the acknowledgements later.

What an agent sends to a keyed topic inside a unit waits for the unit's end too, in one aiokafka
record batch per topic-partition (`Batches`), and goes out in step 1; what it sends to an
internal topic marked with `bundle()` is first packed per destination partition in the order
sent (stream/bundles.py), one record per partition.

A crash at any step leaves the input uncommitted, and the local store a prefix of its changelog
(never ahead of it). The restarted worker reads the changelog's tail into the store (recovery)
and processes the input again: an input whose changes the changelog holds had its outputs
acknowledged first and is found done (its `event_id` in `seen`); any other sends its outputs
again, with the same `action_id`s. A unit ends when `batch_max` messages are in it, when no
further message waits in the agent's buffer, or at the latest `FLUSH_AFTER_S` after its first
message.
"""

from __future__ import annotations

import asyncio
import logging
import os
import weakref
from collections.abc import AsyncIterator, Callable
from contextvars import ContextVar
from typing import Any

import rocksdict
from faust.streams import current_event

from processor.kafka.partitioner import partition_of
from processor.stream import bundles

log = logging.getLogger(__name__)

#: A unit still open this long after its first message is ended by a timer (a message taken
#: while a rebalance cleared the agent's buffer would otherwise wait for the next one).
FLUSH_AFTER_S = 0.05
#: The exit code of a worker whose output Kafka refused: it must not acknowledge the input.
EXIT_SEND_FAILED = 75

_unit: ContextVar[Unit | None] = ContextVar("unit of work", default=None)
#: topic -> its partition count, for the topics whose keyed messages `send` places itself.
_partitions: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()
#: The topics whose messages units bundle.
_bundled: weakref.WeakSet[Any] = weakref.WeakSet()
#: topic name -> the largest record (key and value) it takes, less a record batch's overhead.
_limits: dict[str, int] = {}
#: What a record batch of one record adds to its key and value, at most (Kafka's v2 format:
#: a 61-byte header, the record's varints, attributes and header count), rounded up.
_BATCH_OVERHEAD = 128


class OutputTooLarge(ValueError):
    """A record larger than its topic takes: Kafka would refuse it, so it is never sent, and the
    input it was made for is dead-lettered as `too_large` instead (see `check`)."""

    def __init__(self, what: str, topic: str, size: int) -> None:
        limit = _limits[topic] + _BATCH_OVERHEAD
        super().__init__(
            f"{what} would be a record of {size + _BATCH_OVERHEAD:,} bytes with its batch; "
            f"{topic} takes at most {limit:,} (max.message.bytes)"
        )


def limit_records(topic: str, max_message_bytes: int) -> None:
    """Records for `topic` (a name) must fit `max_message_bytes` (`check`)."""
    _limits[topic] = max_message_bytes - _BATCH_OVERHEAD


def check(topic: str, key: bytes | None, value: bytes | None, what: str = "a message") -> None:
    """Raise OutputTooLarge if this record would not fit `topic` (one limited by
    `limit_records`). Checked before anything is kept for the input: a record Kafka refuses
    at the end of a unit would stop the worker, and the replay would meet it again."""
    limit = _limits.get(topic)
    size = len(key or b"") + len(value or b"")
    if limit is not None and size > limit:
        raise OutputTooLarge(what, topic, size)


def keyed(topic: Any, partitions: int) -> None:
    """Choose the partition of `topic`'s keyed messages here (`partition_of`, cached), not in
    the producer: aiokafka hashes every key anew in pure Python, 3 % of the worker's CPU for
    the actions and transitions. `partitions` must be the topic's partition count, as the
    worker's preflight checks against `topics/` before it starts."""
    _partitions[topic] = partitions


def bundle(topic: Any, partitions: int) -> None:
    """Inside units, send `topic`'s keyed messages in bundles (its consumers must unpack them:
    `bundles.messages`). `partitions` must be the topic's partition count."""
    keyed(topic, partitions)
    _bundled.add(topic)


async def produce(
    topic: Any, key: bytes | None, value: bytes | None, partition: int | None = None
) -> Any:
    """Hand one message to the app's producer; returns its delivery future.

    Faust's `Topic.send` goes to the same producer, but first wraps the message in a
    FutureMessage with a future, callbacks and sensor calls of its own: 18 % of the worker's
    samples in the benchmark's profile, for nothing that a unit uses. Keys and values here are
    bytes already (the raw codec). In exactly-once mode Faust has to pick the partition's
    transactional producer, so there the message takes Faust's way.
    """
    app = topic.app
    if app.in_transaction:
        return await topic.send(key=key, value=value, partition=partition)
    return await app.producer.send(topic.get_topic_name(), key, value, partition, None, None)


def producer_of(app: Any) -> Any:
    """The aiokafka producer under a Faust app's producer."""
    return app.producer._ensure_producer()


class Batches:
    """Records handed to the producer a whole record batch at a time: one open batch per
    topic-partition, in the order begun, sent by `send()`.

    aiokafka's `send` costs per message: the producer's checks, the accumulator, a delivery
    future per record (and Faust's wrapper with its sensor calls before that), 9 % of the
    worker's samples in the benchmark's profile. Here a record is one append to aiokafka's
    record batch builder (compiled, under a microsecond) and a batch has one delivery future.
    A batch is handed over closed, so the producer sends it without lingering.
    """

    __slots__ = ("_open", "_order")

    def __init__(self) -> None:
        self._open: dict[tuple[str, int], Any] = {}
        #: (producer, topic, partition, batch), in the order begun.
        self._order: list[tuple[Any, str, int, Any]] = []

    def __bool__(self) -> bool:
        return bool(self._order)

    def add(
        self, producer: Any, topic: str, partition: int, key: bytes | None, value: bytes | None
    ) -> None:
        """Append one record for `partition` of `topic` (a name), behind the earlier ones;
        `producer` is the aiokafka producer that sends it."""
        batch = self._open.get((topic, partition))
        if batch is not None and batch.append(timestamp=None, key=key, value=value) is not None:
            return
        # None yet, or that one is full: a new batch (its first record always fits).
        batch = self._open[topic, partition] = producer.create_batch()
        self._order.append((producer, topic, partition, batch))
        batch.append(timestamp=None, key=key, value=value)

    async def send(self) -> list[tuple[Any, int]]:
        """Hand every batch to its producer; returns (delivery future, records) per batch.
        The future's metadata has the batch's first offset."""
        order, self._order = self._order, []
        self._open.clear()
        sent = []
        for producer, topic, partition, batch in order:
            batch.close()
            sent.append(
                (await producer.send_batch(batch, topic, partition=partition), batch.record_count())
            )
        return sent


async def send(topic: Any, key: bytes | None, value: bytes) -> None:
    """Send one message; inside a unit, the unit's end waits until Kafka acknowledged it. A
    keyed topic's message waits for the unit's end in the unit's batches (in a bundle, if the
    topic is bundled); any other goes to the producer at once."""
    unit = _unit.get()
    partition = None
    if key is not None:
        partitions = _partitions.get(topic)
        if partitions is not None:
            partition = partition_of(key, partitions)
            if unit is not None and unit.working:
                if topic in _bundled:
                    unit.bundle(topic, partition, key, value)
                else:
                    await unit.hand_over(topic, partition, key, value)
                return
    delivered = await produce(topic, key, value, partition)
    if unit is not None:
        unit.sends.append(delivered)


def _current_partition() -> int:
    event = current_event()
    if event is None:
        raise RuntimeError("a table is written outside an agent's message")
    return int(event.message.partition)


class Coalesced:
    """Writes to one Faust table whose changelog records wait for `release()`, one per key.

    A table is co-partitioned with the topic of the agent that writes it, so a write goes to the
    current message's partition (`partition_of`, Faust's current event by default).
    """

    def __init__(self, table: Any, partition_of: Callable[[], int] = _current_partition) -> None:
        self._table = table
        self._partition_of = partition_of
        #: key -> (partition, last value or None for a deletion), since the last release.
        self._dirty: dict[bytes, tuple[int, bytes | None]] = {}
        #: The same for the writes whose changelog records are acknowledged (or on their way)
        #: and that the local store does not have yet, with the changelog offsets they reach.
        self._acked: dict[bytes, tuple[int, bytes | None]] = {}
        self._offsets: dict[Any, int] = {}

    def get(self, key: bytes, default: bytes | None = None) -> bytes | None:
        """The value at `key`, with the writes not yet released."""
        value = self._read(key)
        return default if value is None else value

    def _read(self, key: bytes) -> bytes | None:
        """The unit's own write of `key` if there is one, else one read of the local store
        in the current message's partition.

        Faust's `Table.get` asks the store whether it holds the key and then reads it: two
        RocksDB reads through four layers for one value. Outside a message, and on the memory
        store, the table answers.
        """
        written = self._dirty.get(key) or self._acked.get(key)
        if written is not None:
            return written[1]
        by_partition = self._databases()
        if by_partition is None or current_event() is None:
            return self._table.get(key)  # type: ignore[no-any-return]
        return by_partition(self._partition_of()).get(key)  # type: ignore[no-any-return]

    def _databases(self) -> Callable[[int], Any] | None:
        """The RocksDB store's partition -> database accessor; None for the memory store."""
        return getattr(self._table.data, "_db_for_partition", None)

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self._dirty[key] = (self._partition_of(), value)

    def unreleased(self) -> dict[bytes, tuple[int, bytes | None]]:
        """A copy of the writes that have not reached the local store yet: key -> (partition,
        last value or None for a deletion)."""
        return {**self._acked, **self._dirty}

    def pop(self, key: bytes, default: bytes | None = None) -> bytes | None:
        """Remove `key` if present; its record is a tombstone (none if it never was there)."""
        value = self._read(key)
        if value is None:
            return default  # absent, or deleted in this unit already (its tombstone waits)
        self._dirty[key] = (self._partition_of(), None)
        return value

    async def acknowledge(self) -> int:
        """Send the changelog record of every key written since the last release and wait
        until Kafka acknowledged them all; returns how many there were. Until `write_local`,
        reads still see these writes (the local store does not have them yet).

        (Faust's `send_changelog` is not used: it queues the record in Faust's producer
        buffer, and the flush before a commit gives up on that buffer after 0.1 s without
        progress, so a commit could overtake the records it depends on.)
        """
        acked, self._dirty = self._dirty, {}
        self._acked.update(acked)
        table = self._table
        topic = table.changelog_topic
        if table.app.in_transaction:
            # Exactly-once: Faust's callback keeps the offset until the transaction commits.
            sent = [
                await topic.send(key=key, value=value, partition=partition,
                                 key_serializer="raw", value_serializer="raw",
                                 callback=table._on_changelog_sent)
                for key, (partition, value) in acked.items()
            ]  # fmt: skip
            for delivered in sent:
                await delivered
            return len(sent)
        batches, name, producer = Batches(), topic.get_topic_name(), producer_of(table.app)
        for key, (partition, value) in acked.items():
            batches.add(producer, name, partition, key, value)
        for delivered, records in await batches.send():
            meta = await delivered
            tp = meta.topic_partition
            self._offsets[tp] = max(meta.offset + records - 1, self._offsets.get(tp, -1))
        return len(acked)

    def write_local(self) -> None:
        """Write the acknowledged changes to the local store: in RocksDB one write batch per
        partition (as Faust's own changelog restore does), not a put per change, that also
        sets the partition's persisted changelog offset (Faust's key for it). The store thus
        always holds a prefix of its changelog, however the worker stops: a restart reads
        only the changelog's tail, and the store never holds a change Kafka does not have."""
        acked, self._acked = self._acked, {}
        offsets, self._offsets = self._offsets, {}
        store = self._table.data
        by_partition = self._databases()
        if by_partition is None:  # the memory store
            for key, (_, value) in acked.items():
                if value is None:
                    store.pop(key, None)
                else:
                    store[key] = value
            for tp, offset in offsets.items():
                store.set_persisted_offset(tp, offset)
            return
        batches: dict[int, Any] = {}

        def batch_of(partition: int) -> Any:
            batch = batches.get(partition)
            if batch is None:
                batch = batches[partition] = rocksdict.WriteBatch(raw_mode=True)
            return batch

        index = store._key_index  # Faust's key -> partition hint for reads outside a message
        for key, (partition, value) in acked.items():
            if value is None:
                batch_of(partition).delete(key)
                index.pop(key, None)
            else:
                batch_of(partition).put(key, value)
                index[key] = partition
        for tp, offset in offsets.items():
            batch_of(tp.partition).put(store.offset_key, str(offset).encode())
        for partition, batch in batches.items():
            by_partition(partition).write(batch)

    async def release(self) -> int:
        """`acknowledge`, then `write_local`; returns how many keys changed."""
        released = await self.acknowledge()
        self.write_local()
        return released

    @property
    def pending(self) -> int:
        """Keys whose changelog record waits for the next release."""
        return len(self._dirty)


class Unit:
    """One agent's work in hand; `events(stream)` replaces `stream.events()` in the agent."""

    def __init__(self, name: str, writes: Coalesced | None, max_messages: int) -> None:
        self.name = name
        self._writes = writes
        self._max = max_messages
        #: Delivery futures of the messages sent for the unit.
        self.sends: list[Any] = []
        #: Messages to keyed topics, sent at the unit's end.
        self.batches = Batches()
        #: Bundles to send at the unit's end, in the order begun; the open one per partition.
        self._bundles: list[tuple[Any, int, bundles.Builder]] = []
        self._open: dict[tuple[int, int], bundles.Builder] = {}
        self._taken: list[Any] = []
        self._stream: Any = None
        self._lock = asyncio.Lock()
        self._timer: asyncio.TimerHandle | None = None
        self._later: asyncio.Future[None] | None = None

    @property
    def in_hand(self) -> bool:
        """Messages taken, sent or written and not yet made durable?"""
        writes = self._writes.pending if self._writes is not None else 0
        return bool(self._taken or self.sends or self._bundles or self.batches or writes)

    @property
    def working(self) -> bool:
        """Is the unit working on messages (so that it ends, and sends its batches, later)?"""
        return bool(self._taken)

    def bundle(self, topic: Any, partition: int, key: bytes, value: bytes) -> None:
        """Add one message to the unit's bundle for `partition` of `topic`."""
        slot = (id(topic), partition)
        builder = self._open.get(slot)
        if builder is None or not builder.fits(key, value):
            builder = self._open[slot] = bundles.Builder()
            self._bundles.append((topic, partition, builder))
        builder.add(key, value)

    async def hand_over(self, topic: Any, partition: int, key: bytes | None, value: bytes) -> None:
        """Put one message into the unit's batches; in exactly-once mode, give it to Faust's
        transactional producer now (`produce`)."""
        if topic.app.in_transaction:
            self.sends.append(await produce(topic, key, value, partition))
        else:
            producer = producer_of(topic.app)
            self.batches.add(producer, topic.get_topic_name(), partition, key, value)

    async def events(self, stream: Any) -> AsyncIterator[Any]:
        """The stream's events, each acknowledged only when the unit it belongs to has ended."""
        self._stream = stream
        stream.enable_acks = False  # acknowledged in flush()
        queue = stream.channel.queue
        _unit.set(self)
        async for event in stream.events():
            async with self._lock:
                self._taken.append(event)
                yield event
            if len(self._taken) >= self._max or queue.empty():
                await self.flush()
            elif self._timer is None:
                loop = asyncio.get_running_loop()
                self._timer = loop.call_later(FLUSH_AFTER_S, self._flush_later)

    def _flush_later(self) -> None:
        self._timer = None
        self._later = asyncio.ensure_future(self.flush())

    async def flush(self) -> None:
        """End the unit: outputs acknowledged, then changelog records acknowledged, then the
        input acknowledged (its offsets committed by Faust later)."""
        async with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            try:
                pending, self._bundles = self._bundles, []
                self._open.clear()
                for topic, partition, builder in pending:
                    await self.hand_over(topic, partition, None, builder.value())
                self.sends += [delivered for delivered, _ in await self.batches.send()]
                sends, self.sends = self.sends, []
                for delivered in sends:  # the outputs first,
                    await delivered
                if self._writes is not None:  # then the changelog records
                    await self._writes.release()
            except Exception:
                # Acknowledging the input now would lose this output for good. Stop at once,
                # as a crash would: the next start rebuilds from the changelogs and replays.
                log.critical(
                    "%s: Kafka refused a message sent for this worker's input; stopping "
                    "without committing it (the restarted worker will process it again)",
                    self.name,
                    exc_info=True,
                )
                logging.shutdown()
                os._exit(EXIT_SEND_FAILED)
            taken, self._taken = self._taken, []
            for event in taken:
                await self._stream.ack(event)
