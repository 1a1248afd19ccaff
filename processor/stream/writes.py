"""Table writes whose changelog records are coalesced per key within a batch.

Faust sends a changelog record for every table write. The journey agent, when it takes a batch
of messages, writes each person's new state to the local store at once (so that every reader,
and the next message of the same person, sees it) but sends the changelog record of a key only
once, with its last value, when the batch is done: Kafka Streams' record cache. The batch's
offsets are committed only after that (the messages are acknowledged after the batch, and a
commit flushes the producer first), so the changelog never falls behind a committed offset.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from faust.streams import _current_event


def current(event: Any) -> None:
    """Make `event` the current event of this task, as Faust's own stream iteration does.

    Faust's tables find the partition of a read or write (its RocksDB database, its changelog
    partition) through the task's current event; an agent working through a batch from
    `take_events` must name each event in turn. Only this task's context changes: the stream's
    own bookkeeping (which runs in another task) is left alone.
    """
    _current_event.set(None if event is None else weakref.ref(event))


class Coalesced:
    """Writes to one Faust table: straight through, or coalesced per key inside `batch()`."""

    def __init__(self, table: Any) -> None:
        self._table = table
        #: key -> (partition, last value or None for a deletion), while a batch is open.
        self._dirty: dict[bytes, tuple[int, bytes | None]] | None = None

    def put(self, key: bytes, value: bytes, partition: int) -> None:
        """Set `key`; `partition` is the current message's (the table is co-partitioned)."""
        if self._dirty is None:
            self._table[key] = value
            return
        # The store only (the current event names the partition's database); no changelog yet.
        self._table.data[key] = value
        self._dirty[key] = (partition, value)

    def delete(self, key: bytes, partition: int) -> None:
        """Remove `key` if present."""
        if self._dirty is None:
            self._table.pop(key, None)
            return
        if key in self._table.data:
            del self._table.data[key]
            self._dirty[key] = (partition, None)
        elif key in self._dirty:
            self._dirty[key] = (partition, None)

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Coalesce the changelog records of the writes made inside; send them on exit."""
        self._dirty = {}
        try:
            yield
        finally:
            dirty, self._dirty = self._dirty, None
            send = self._table.send_changelog
            for key, (partition, value) in dirty.items():
                send(partition, key, value, key_serializer="raw", value_serializer="raw")

    @property
    def pending(self) -> int:
        """Keys whose changelog record waits for the end of the batch."""
        return len(self._dirty or ())
