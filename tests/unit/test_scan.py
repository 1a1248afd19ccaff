"""Scanning the journey table as of one instant: a real RocksDB store, and the memory store's copy;
and the rebuild that derives the timer index and the stage counts from one such scan."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import faust
from faust.types import TP
from rocksdict import Options, Rdict

from processor import topics as t
from processor.journey.state import CustomerState, encode, first_due
from processor.kafka.partitioner import partition_of
from processor.metrics import Metrics
from processor.stream.app import Runtime
from processor.stream.commit.writes import Coalesced
from processor.stream.observe import Observer
from processor.stream.timers.clock import rebuild
from processor.stream.timers.index import TimerIndex
from processor.stream.timers.scan import Row, Snapshot

STAGES = ("awareness", "consideration", "purchase")


def _rocksdb_table(tmp_path: Path) -> Any:
    app = faust.App("scan-test", store="rocksdb://", datadir=str(tmp_path), autodiscover=False)
    return app.Table("journey", partitions=4, key_type=bytes, value_type=bytes)


def _put(table: Any, partition: int, key: bytes, value: bytes) -> None:
    table.data._db_for_partition(partition).put(key, value)


class _DictTable(dict[bytes, bytes]):
    """What the scan needs of a table kept in memory: its items, and a store that is not RocksDB."""

    @property
    def data(self) -> _DictTable:
        return self


async def _read(
    snapshot: Snapshot, size: int, between: Callable[[], None] | None = None
) -> list[Row]:
    rows: list[Row] = []
    async for batch in snapshot.batches(size):
        assert len(batch) <= size
        rows.extend(batch)
        if between is not None:
            between()
    return rows


def test_rocksdb_iterators_read_the_database_as_it_was_when_they_were_created(
    tmp_path: Path,
) -> None:
    """What `Snapshot` relies on, checked on the binding Faust uses: later writes, deletions
    and a compaction do not show through an iterator created before them."""
    db = Rdict(str(tmp_path / "db"), options=Options(raw_mode=True))
    for n in range(100):
        db.put(b"k%03d" % n, b"old")
    items = db.items()
    for n in range(0, 100, 2):
        db.put(b"k%03d" % n, b"new")
    for n in range(1, 100, 4):
        db.delete(b"k%03d" % n)
    db.put(b"k999", b"new")
    db.flush()
    db.compact_range(None, None)
    assert list(items) == [(b"k%03d" % n, b"old") for n in range(100)]
    db.close()


async def test_a_rocksdb_scan_sees_the_table_as_it_was_when_it_started(tmp_path: Path) -> None:
    table = _rocksdb_table(tmp_path)
    before = {p: {b"p%d-%04d" % (p, n): b"v0" for n in range(250)} for p in range(4)}
    for p, held in before.items():
        for key, value in held.items():
            _put(table, p, key, value)
    changelog = table.changelog_topic_name
    table.data.set_persisted_offset(TP(changelog, 0), 1234)  # kept in the same database
    snapshot = Snapshot(table, 4, {0, 1, 3})
    writes = iter(range(10_000))

    def agent() -> None:  # between batches: overwrite, delete and add on every partition
        n = next(writes)
        for p in range(4):
            _put(table, p, b"p%d-%04d" % (p, n), b"v1")
            table.data._dbs[p].delete(b"p%d-%04d" % (p, 249 - n))
            _put(table, p, b"p%d-new-%d" % (p, n), b"v1")

    rows = await _read(snapshot, 64, agent)
    want = [(p, k, v) for p in (0, 1, 3) for k, v in sorted(before[p].items())]
    assert rows == want  # each row once, none later than the start, the offset left out
    assert snapshot.cut == set()


async def test_a_partition_revoked_during_a_rocksdb_scan_is_cut_short(tmp_path: Path) -> None:
    table = _rocksdb_table(tmp_path)
    for p in (0, 1):
        for n in range(300):
            _put(table, p, b"p%d-%04d" % (p, n), b"v")
    snapshot = Snapshot(table, 4, {0, 1})
    batches = snapshot.batches(100)
    first = await anext(batches)
    assert {p for p, _, _ in first} == {0}
    table.data._dbs.pop(0)  # what Faust does when the partition is revoked
    rest = [row for batch in [b async for b in batches] for row in batch]
    assert {p for p, _, _ in rest} == {1}
    assert len(rest) == 300
    assert snapshot.cut == {0}
    assert snapshot._parts == []  # nothing holds the revoked database open any more


async def test_a_memory_scan_reads_a_copy_of_the_owned_partitions() -> None:
    table = _DictTable({b"c%04d" % n: b"v0" for n in range(500)})
    owned = {0, 2, 5}
    snapshot = Snapshot(table, 8, owned)
    writes = iter(range(10_000))

    def agent() -> None:  # would break iterating the dict itself: it changes size
        n = next(writes)
        table[b"new%d" % n] = b"v1"
        table.pop(b"c%04d" % n, None)
        table[b"c%04d" % (499 - n)] = b"v1"

    rows = await _read(snapshot, 10, agent)
    want = {
        (partition_of(k, 8), k, b"v0")
        for n in range(500)
        if partition_of(k := b"c%04d" % n, 8) in owned
    }
    assert sorted(rows) == sorted(want)
    assert len(rows) == len(want)


def _person(n: int, stage: str, due: float | None) -> CustomerState:
    s = CustomerState(customer_id=f"C-{n}", stage=stage, stage_since=0.0)
    if due is not None:
        s.timers = {"lapse": (due, "lapse", {})}
    return s


def _runtime(table: Any, owned: set[int]) -> Runtime:
    """What the rebuild uses of the runtime."""
    actives = {TP(t.CUSTOMER_EVENTS, p) for p in owned}
    rt = SimpleNamespace(
        app=SimpleNamespace(assignor=SimpleNamespace(assigned_actives=lambda: actives)),
        table=table,
        journey_writes=Coalesced(table),
        partitions=4,
        timer_index=TimerIndex(),
        observer=Observer(),
        metrics=Metrics.create(stages=STAGES),
        journey=SimpleNamespace(stages=STAGES),
        clock_ready=False,
    )
    return cast(Runtime, rt)


async def test_a_rebuild_while_the_agent_runs_agrees_with_one_after_it(tmp_path: Path) -> None:
    """One scan feeds the timer index and the stage counts; what the agent changes meanwhile
    (stage moves, timer notes) is reconciled, so the result is the table's final contents."""
    table = _rocksdb_table(tmp_path)
    people: dict[bytes, tuple[int, CustomerState]] = {}
    for n in range(12_000):
        p, key = n % 4, b"C-%d" % n
        state = _person(n, STAGES[n % 2], 1000.0 + n if n % 3 else None)
        people[key] = (p, state)
        _put(table, p, key, encode(state))
    _put(table, 0, b"moved", b'{"moved":"C-1"}')  # markers are no person
    owned = {0, 1, 2}
    rt = _runtime(table, owned)
    during = 0

    async def agent() -> None:  # between the scan's batches, on partitions read and not yet
        nonlocal during
        for step in range(12):
            await asyncio.sleep(0)
            during += not rt.clock_ready
            for n in range(step, 12_000, 600):
                key = b"C-%d" % n
                p, old = people[key]
                new = _person(n, "purchase", None if step % 2 else 5.0 + n)
                people[key] = (p, new)
                _put(table, p, key, encode(new))
                rt.observer.stages.move(p, old.stage, new.stage)
                rt.timer_index.note(p, key, new)

    await asyncio.gather(rebuild(rt), agent())
    assert rt.clock_ready
    assert during >= 8  # the agent did run while the scan was under way

    mine = {k: s for k, (p, s) in people.items() if p in owned}
    stages = rt.observer.stages.totals()
    assert stages == {s: sum(1 for x in mine.values() if x.stage == s) for s in STAGES}
    # Candidates are re-checked against the table before firing (a stale one costs a look-up):
    # none is missing, and those still due are exactly the people with a timer.
    candidates = {k for _, k in rt.timer_index.due(owned, 1e9, resend_after_s=0, limit=99_999)}
    timed = {k for k, s in mine.items() if first_due(s) is not None}
    assert timed <= candidates
    assert {k for k in candidates if first_due(people[k][1]) is not None} == timed

    quiet = _runtime(table, owned)
    assert await rebuild(quiet) == len(timed)
    assert quiet.observer.stages.totals() == stages


async def test_a_rebuild_counts_the_unit_in_hand_whose_changes_are_not_stored_yet(
    tmp_path: Path,
) -> None:
    """The journey's changes reach the store when its checkpoint commits (commit/writes.py). A
    rebuild while a unit is in hand sees them as the table's contents all the same: a person's new
    timer, a new person, a deletion; not a partition this worker does not own."""
    table = _rocksdb_table(tmp_path)
    _put(table, 0, b"C-1", encode(_person(1, "awareness", None)))
    _put(table, 1, b"C-3", encode(_person(3, "awareness", 300.0)))
    _put(table, 0, b"C-4", encode(_person(4, "awareness", 400.0)))
    rt = _runtime(table, {0, 1})
    w = rt.journey_writes
    w.at(0)[b"C-1"] = encode(_person(1, "consideration", 100.0))  # a timer where there was none
    w.at(0).pop(b"C-4")  # gone
    w.at(1)[b"C-2"] = encode(_person(2, "awareness", 200.0))  # new
    w.at(2)[b"C-9"] = encode(_person(9, "awareness", 900.0))  # not ours
    assert await rebuild(rt) == 3
    due = rt.timer_index.due({0, 1}, 1e9, resend_after_s=0, limit=100)
    assert sorted(due) == [(0, b"C-1"), (1, b"C-2"), (1, b"C-3")]
    assert rt.observer.stages.totals() == {"awareness": 2, "consideration": 1}
    assert table.data._db_for_partition(0).get(b"C-1") == encode(_person(1, "awareness", None))


async def test_a_rocksdb_scan_leaves_the_block_cache_alone(tmp_path: Path) -> None:
    """Right after a recovery the table is in fresh files: read through the block cache, a scan
    would leave all of it there (Faust gives each partition 2 GiB)."""
    table = _rocksdb_table(tmp_path)
    db = table.data._db_for_partition(0)
    for n in range(5000):
        db.put(b"C-%d" % n, b'{"stage":"awareness","seen":["%d"]}' % n * 20)
    db.flush()

    def cached() -> int:
        return int(db.property_int_value("rocksdb.block-cache-usage") or 0)

    before = cached()
    assert len(await _read(Snapshot(table, 4, {0}), 1000)) == 5000
    assert cached() - before < 64 * 1024
    assert sum(1 for _ in db.items()) == 5000  # a plain read does fill it
    assert cached() - before > 1024 * 1024
