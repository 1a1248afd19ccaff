"""Every private attribute of Faust and aiokafka the worker reads or sets, behind a typed function.

Nothing outside this package touches them; tests/unit/test_extensions.py checks each one on the
installed versions (pyproject.toml pins faust-streaming to the range they were tested on), so
an upgrade that renames one fails there, not at a customer's worker.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from faust.stores.rocksdb import Store as RocksDBStore

#: aiokafka's hook run when a group join completed: (generation, member id, protocol, assignment).
JoinComplete = Callable[..., Awaitable[Any]]
#: aiokafka's hook that leaves the group when the consumer stopped polling or closes.
LeaveGroup = Callable[[], Awaitable[None]]


def aiokafka_producer(app: Any) -> AIOKafkaProducer:
    """The aiokafka producer under a Faust app's producer (started with the app)."""
    return app.producer._ensure_producer()


def rocksdb_partitions(table: Any) -> Mapping[int, Any] | None:
    """A Faust table's RocksDB databases by partition, the store's own map (a partition that
    is revoked leaves it); None for any other store."""
    store = table.data
    if isinstance(store, RocksDBStore) and store.use_rocksdict:
        return store._dbs
    return None


def rocksdb_partition(table: Any) -> Callable[[int], Any] | None:
    """A Faust table's partition -> RocksDB database accessor (opening it if need be); None for
    the memory store."""
    store = table.data
    if isinstance(store, RocksDBStore):
        return store._db_for_partition
    return None


def changelog_offset_key(table: Any) -> bytes:
    """The key under which Faust's RocksDB store keeps, in each partition's database, the
    offset of the last changelog record the database holds."""
    return table.data.offset_key  # type: ignore[no-any-return]


def key_index(table: Any) -> MutableMapping[bytes, int]:
    """The RocksDB store's key -> partition hint, which Faust reads for a look-up outside a
    message; a writer beside Faust keeps it current."""
    return table.data._key_index  # type: ignore[no-any-return]


def committed_offsets(consumer: Any) -> Mapping[Any, int | None]:
    """What a Faust consumer committed last (the next offset to read) per partition."""
    return consumer._committed_offset  # type: ignore[no-any-return]


def group_coordinator(consumer: AIOKafkaConsumer) -> Any:
    """A started aiokafka consumer's group coordinator (not yet joined when just started)."""
    return consumer._coordinator


def worker_consumer(thread: Any) -> AIOKafkaConsumer:
    """The aiokafka consumer of Faust's consumer thread (once started)."""
    return thread._ensure_consumer()


def set_fetch_max_wait(consumer: AIOKafkaConsumer, ms: int) -> None:
    """How long a fetch of this (not yet started) aiokafka consumer waits for data: aiokafka
    reads it when the consumer starts, and Faust passes its own hard-coded 1.5 s."""
    consumer._fetch_max_wait_ms = ms


def join_hooks(coordinator: Any) -> tuple[JoinComplete, LeaveGroup]:
    """The coordinator's join-completed and leave-group hooks."""
    return coordinator._on_join_complete, coordinator._maybe_leave_group


def set_join_hooks(coordinator: Any, complete: JoinComplete, leave: LeaveGroup) -> None:
    """Replace the coordinator's join-completed and leave-group hooks (`join_hooks`)."""
    coordinator._on_join_complete = complete
    coordinator._maybe_leave_group = leave


def is_closing(coordinator: Any) -> bool:
    """Is the coordinator closing (its consumer stopping)?"""
    return bool(coordinator._closing.done())
