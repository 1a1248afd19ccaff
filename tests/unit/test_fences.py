"""Erasure fences (processor/stream/agents/fences.py) over a plain dict as the table."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson

from processor.stream.agents import fences
from processor.stream.agents.fences import Fences

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class Table(dict[bytes, bytes]):
    """A plain dict as every partition of the table (keys name their partition anyway)."""

    def at(self, partition: int) -> Table:
        return self


def test_a_fence_blocks_what_happened_before_the_request_and_nothing_after() -> None:
    table = Table()
    f = Fences(table, window_s=3600)
    f.add(3, ["e:ana@example.com"], requested=T0, now=T0 + timedelta(seconds=5))
    assert f.blocks(3, ["a:ck", "e:ana@example.com"], T0)
    assert f.blocks(3, ["e:ana@example.com"], T0 - timedelta(days=2))
    assert not f.blocks(3, ["e:ana@example.com"], T0 + timedelta(seconds=1))
    assert not f.blocks(4, ["e:ana@example.com"], T0)  # another partition's fences
    assert not f.blocks(3, ["e:bo@example.com"], T0)
    d = fences.digest("e:ana@example.com")
    assert set(table) == {b"~fences:3", b"~fences:3:" + d[:2].encode()}
    assert all(fences.is_fences(raw) for raw in table.values())
    assert not [raw for raw in table.values() if b"ana" in raw]
    assert list(orjson.loads(table[b"~fences:3:" + d[:2].encode()])["fences"]) == [d]


def test_fences_expire_with_the_first_message_after_their_window() -> None:
    table = Table()
    f = Fences(table, window_s=60)
    f.add(0, ["c:C-1"], requested=T0, now=T0)
    f.add(0, ["c:C-2"], requested=T0, now=T0 + timedelta(seconds=30))
    assert f.live(0, T0 + timedelta(seconds=59))
    assert f.blocks(0, ["c:C-1"], T0)
    assert f.blocks(0, ["c:C-2"], T0)
    f.live(0, T0 + timedelta(seconds=61))
    assert not f.blocks(0, ["c:C-1"], T0)
    assert f.blocks(0, ["c:C-2"], T0)
    assert not f.live(0, T0 + timedelta(seconds=91))
    assert table == {}


def test_the_cache_follows_the_table_after_a_restore() -> None:
    table = Table()
    f = Fences(table, window_s=60)
    f.add(1, ["c:C-1"], requested=T0, now=T0)
    other = Fences(table, window_s=60)  # a restart: the table came back from the changelog
    assert other.blocks(1, ["c:C-1"], T0)
    table.pop(b"~fences:1")  # a tombstone replayed
    assert not f.blocks(1, ["c:C-1"], T0)


def test_many_fences_spread_over_buckets_and_a_zero_window_keeps_none() -> None:
    table = Table()
    f = Fences(table, window_s=60)
    names = [f"c:C-{n}" for n in range(3000)]
    for n in range(0, len(names), 3):  # erasures of three names each
        f.add(0, names[n : n + 3], requested=T0, now=T0 + timedelta(seconds=n / 100))
    assert all(f.blocks(0, [name], T0) for name in names)
    assert not f.blocks(0, ["c:C-3000"], T0)
    assert len(table) == 257  # the summary and 256 buckets
    assert len(table[b"~fences:0"]) < 8000  # one expiry per bucket
    assert max(len(raw) for key, raw in table.items() if key != b"~fences:0") < 2000
    f.live(0, T0 + timedelta(seconds=60 + 15))  # those added up to second 15 expired
    assert sum(f.blocks(0, [name], T0) for name in names) == 3000 - 3 * len(range(0, 1501, 3))
    f.live(0, T0 + timedelta(seconds=91))
    assert table == {}
    off = Table()
    Fences(off, window_s=0).add(0, ["c:C-1"], requested=T0, now=T0)
    assert off == {}


def test_a_partition_without_fences_is_not_looked_up_again_until_forgotten() -> None:
    table = Table()
    f = Fences(table, window_s=60)
    assert not f.live(2, T0)
    f.add(2, ["c:C-1"], requested=T0, now=T0)  # its own erasure: known at once
    assert f.live(2, T0)
    assert not f.live(5, T0)
    writer = Fences(table, window_s=60)  # another worker's, restored here by a rebalance
    writer.add(5, ["c:C-2"], requested=T0, now=T0)
    assert not f.live(5, T0)  # not looked up again ...
    f.forget()  # ... until the rebalance says the tables may have changed
    assert f.live(5, T0)
    assert f.blocks(5, ["c:C-2"], T0)
