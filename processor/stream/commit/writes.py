"""Writes: record batches handed to the producer whole, and a table's changes held per key
until the checkpoint that made them commits (stream/commit/checkpoint.py).

`Coalesced` is one table's side of a checkpoint (its `Store`): within a checkpoint the agent's
own reads see every change at once (the next message of the same key included), but a change
waits, coalesced per key (Kafka Streams' record cache), until the checkpoint's outputs are
acknowledged; then the changed keys' changelog records are sent and awaited (`acknowledge`),
then the local store gets the changes in one RocksDB write batch per partition together with
the changelog offsets they reach (`write_local`). The local store is thus always a prefix of
its changelog, however the worker stops.

Readers outside the agent (the customer API, the timer clock) see a checkpoint's changes when
it commits, at most `units.FLUSH_AFTER_S` plus the acknowledgements later.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import rocksdict

from processor.stream.extensions import internals


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


class Coalesced:
    """Writes to one Faust table whose changelog records wait for `release()`, one per key.

    A table is co-partitioned with the topic of the agent that writes it: the agent reads and
    writes a key in the partition of the message it handles, through `at(partition)`.
    """

    def __init__(self, table: Any) -> None:
        self._table = table
        #: key -> (partition, last value or None for a deletion), since the last release.
        self._dirty: dict[bytes, tuple[int, bytes | None]] = {}
        #: The same for the writes whose changelog records are acknowledged (or on their way)
        #: and that the local store does not have yet, with the changelog offsets they reach.
        self._acked: dict[bytes, tuple[int, bytes | None]] = {}
        self._offsets: dict[Any, int] = {}

    def at(self, partition: int) -> Partition:
        """The table as the agent sees it while it handles a message of `partition`."""
        return Partition(self, partition)

    def read(self, partition: int, key: bytes) -> bytes | None:
        """The latest write of `key` not yet in the local store if there is one, else one read
        of the local store's `partition`.

        Faust's `Table.get` asks the store whether it holds the key and then reads it: two
        RocksDB reads through four layers for one value. On the memory store the table answers.
        """
        written = self._dirty.get(key) or self._acked.get(key)
        if written is not None:
            return written[1]
        by_partition = self._databases()
        if by_partition is None:
            return self._table.get(key)  # type: ignore[no-any-return]
        return by_partition(partition).get(key)  # type: ignore[no-any-return]

    def _databases(self) -> Callable[[int], Any] | None:
        """The RocksDB store's partition -> database accessor; None for the memory store."""
        return internals.rocksdb_partition(self._table)

    def write(self, partition: int, key: bytes, value: bytes | None) -> None:
        """Set `key` in `partition` (None: delete it; its record is a tombstone)."""
        self._dirty[key] = (partition, value)

    def unreleased(self) -> dict[bytes, tuple[int, bytes | None]]:
        """A copy of the writes that have not reached the local store yet: key -> (partition,
        last value or None for a deletion)."""
        return {**self._acked, **self._dirty}

    async def acknowledge(self) -> int:
        """Send the changelog record of every key written since the last release and wait
        until Kafka acknowledged them all; returns how many there were. Until `write_local`,
        reads still see these writes (the local store does not have them yet).

        (Faust's `send_changelog` is not used: it queues the record in Faust's producer
        buffer, and the flush before a commit gives up on that buffer after 0.1 s without
        progress, so a commit could overtake the records it depends on. Nor is Faust's
        transactional producer: the records go out like the checkpoint's own, and the
        persisted changelog offset is set here, by `write_local`, never ahead of the store.)
        """
        acked, self._dirty = self._dirty, {}
        self._acked.update(acked)
        table = self._table
        topic = table.changelog_topic
        batches, name, producer = (
            Batches(),
            topic.get_topic_name(),
            internals.aiokafka_producer(table.app),
        )
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

        index = internals.key_index(self._table)  # for Faust's reads outside a message
        for key, (partition, value) in acked.items():
            if value is None:
                batch_of(partition).delete(key)
                index.pop(key, None)
            else:
                batch_of(partition).put(key, value)
                index[key] = partition
        offset_key = internals.changelog_offset_key(self._table)
        for tp, offset in offsets.items():
            batch_of(tp.partition).put(offset_key, str(offset).encode())
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


class Partition:
    """One partition of a `Coalesced` table, with a dict's get, set and pop."""

    __slots__ = ("_partition", "_writes")

    def __init__(self, writes: Coalesced, partition: int) -> None:
        self._writes = writes
        self._partition = partition

    def get(self, key: bytes, default: bytes | None = None) -> bytes | None:
        """The value at `key`, with the writes not yet released."""
        value = self._writes.read(self._partition, key)
        return default if value is None else value

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self._writes.write(self._partition, key, value)

    def pop(self, key: bytes, default: bytes | None = None) -> bytes | None:
        """Remove `key` if present; its record is a tombstone (none if it never was there)."""
        value = self._writes.read(self._partition, key)
        if value is None:
            return default  # absent, or deleted already (its tombstone waits)
        self._writes.write(self._partition, key, None)
        return value
