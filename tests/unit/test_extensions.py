"""Every Faust and aiokafka internal the worker relies on (processor/stream/extensions/) is
still there, on the installed versions: an upgrade that removes or renames one fails here."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator, Mapping, MutableMapping
from pathlib import Path
from typing import Any

import faust
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.consumer.group_coordinator import GroupCoordinator
from faust.exceptions import NotReady
from faust.tables.manager import TableManager
from faust.tables.recovery import Recovery
from faust.transport import consumer as faust_consumer
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.transport.utils import DefaultSchedulingStrategy

from processor.stream.extensions import internals
from processor.stream.extensions.consumer import WorkerConsumer, WorkerConsumerThread
from processor.stream.extensions.recovery import BulkRecovery, Tables
from processor.stream.extensions.scheduler import OldestFirst


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """A current event loop, as the worker sets one before it builds Faust's services (which
    read it: without one, Python 3.12 warns and later versions fail)."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield loop
    asyncio.set_event_loop(None)
    loop.close()


def _app(tmp_path: Path, store: str = "rocksdb://") -> Any:
    return faust.App("extensions-test", broker="kafka://127.0.0.1:9", store=store,
                     datadir=str(tmp_path), autodiscover=False)  # fmt: skip


def _overrides(subclass: type, base: type, *names: str) -> None:
    """`subclass` overrides `names`, and `base` still has each with the same parameters."""
    for name in names:
        assert name in vars(subclass), f"{subclass.__name__} no longer overrides {name}"
        ours, theirs = getattr(subclass, name), getattr(base, name, None)
        assert theirs is not None, f"{base.__name__}.{name} is gone"
        if callable(ours) and callable(theirs):
            assert list(inspect.signature(ours).parameters) == list(
                inspect.signature(theirs).parameters
            ), f"{base.__name__}.{name} changed its parameters"


@pytest.mark.usefixtures("loop")
def test_the_rocksdb_stores_partitions_offset_key_and_key_index(tmp_path: Path) -> None:
    table = _app(tmp_path).Table("t", partitions=4, key_type=bytes, value_type=bytes)
    database = internals.rocksdb_partition(table)
    assert database is not None
    db = database(2)  # opened on first use
    db.put(b"k", b"v")
    partitions = internals.rocksdb_partitions(table)
    assert isinstance(partitions, Mapping)
    assert partitions[2] is db
    assert isinstance(internals.changelog_offset_key(table), bytes)
    index = internals.key_index(table)
    assert isinstance(index, MutableMapping)


@pytest.mark.usefixtures("loop")
def test_the_memory_store_has_no_rocksdb_partitions(tmp_path: Path) -> None:
    table = _app(tmp_path, "memory://").Table("t", partitions=4, key_type=bytes, value_type=bytes)
    assert internals.rocksdb_partitions(table) is None
    assert internals.rocksdb_partition(table) is None


@pytest.mark.usefixtures("loop")
def test_the_apps_aiokafka_producer_is_there_once_started(tmp_path: Path) -> None:
    app = _app(tmp_path)
    with pytest.raises(NotReady):
        internals.aiokafka_producer(app)  # not started: Faust's own error, not AttributeError


@pytest.mark.usefixtures("loop")
def test_the_faust_consumer_keeps_its_committed_offsets(tmp_path: Path) -> None:
    consumer = _app(tmp_path).consumer
    try:
        committed = internals.committed_offsets(consumer)
        assert isinstance(committed, MutableMapping)
    finally:
        consumer._thread.thread_loop.close()  # (never started: see test_consumer_handover)


async def test_aiokafkas_consumer_and_group_coordinator_internals() -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers="127.0.0.1:9", fetch_max_wait_ms=1500)
    try:
        internals.set_fetch_max_wait(consumer, 100)
        assert consumer._fetch_max_wait_ms == 100
        # ...read when the consumer starts, for its fetcher:
        assert "fetch_max_wait_ms=self._fetch_max_wait_ms" in inspect.getsource(
            AIOKafkaConsumer.start
        )
        assert internals.group_coordinator(consumer) is None  # made when it starts
        assert "self._coordinator = GroupCoordinator(" in inspect.getsource(AIOKafkaConsumer.start)
    finally:
        await consumer.stop()  # never started: only marks it closed
    for name in ("_on_join_complete", "_maybe_leave_group", "reset_generation"):
        assert callable(getattr(GroupCoordinator, name, None)), name
    assert "self._closing = create_future()" in inspect.getsource(GroupCoordinator.__init__)
    assert "self.member_id" in inspect.getsource(GroupCoordinator.__init__)


def test_the_worker_consumer_thread_and_consumer_override_what_faust_has() -> None:
    _overrides(WorkerConsumerThread, faust_aiokafka.AIOKafkaConsumerThread,
               "_create_worker_consumer", "on_start", "_fetch_records",
               "on_partitions_revoked", "on_partitions_assigned")  # fmt: skip
    # Records come from the fetcher here, before Faust hands them to the streams:
    thread = faust_aiokafka.AIOKafkaConsumerThread
    assert "fetcher.fetched_records(" in inspect.getsource(thread._fetch_records)
    assert "self._fetch_records," in inspect.getsource(thread.getmany)
    assert callable(getattr(faust_aiokafka.AIOKafkaConsumerThread, "_ensure_consumer", None))
    _overrides(WorkerConsumer, faust_aiokafka.Consumer,
               "_new_consumer_thread", "wait_first", "perform_seek")  # fmt: skip
    for name in ("stop_flow", "resume_flow", "flow_active"):
        assert hasattr(faust_consumer.Consumer, name), name
    # The plain-call hand-over recognises the drain loop's race by this argument:
    drain = inspect.getsource(faust_consumer.Consumer._drain_messages)
    assert "callback(message), self.suspend_flow.wait()" in drain


def test_the_scheduler_and_the_recovery_override_what_faust_has() -> None:
    _overrides(OldestFirst, DefaultSchedulingStrategy, "iterate")
    _overrides(BulkRecovery, Recovery, "_build_highwaters", "_build_offsets")
    init = inspect.getsource(Recovery.__init__)
    assert "self.tp_to_table" in init
    assert "self.active_highwaters" in init
    _overrides(Tables, TableManager, "recovery")
    assert "self._recovery" in inspect.getsource(TableManager.__init__)
