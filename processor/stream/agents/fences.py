"""Erasure fences: a person's events that were already on their way when they were erased.

`erase_customer` removes the person everywhere, but events published before it can still be
queued on other partitions and arrive afterwards. Without a fence such an event would start a
new person from an identifier of the erased one, and something about them would be emitted
after the receipt.

So for `erasure_fence_s` after an erasure, the two places where a person can start keep a
fence: the link agent (for links, which would re-link the graph, and the events with several
identifiers and no customer id that it routes) and the journey agent (for everything else, at
every key the person had). An event that carries a fenced name and *occurred at or before* the
erasure request is dropped and counted (`erased_events_dropped_total`); nothing is emitted for
it. An event that occurred after the request is a new person, as it should be. An event with a
customer id goes to that customer's key whatever the graph says, so the journey agent's fence
decides on it; the link agent drops its link if fenced, uncounted. (An event of another
customer that carries an erased identifier is that customer's own: only its link is dropped.)

A fence holds no identifier: it stores the first 128 bits of the SHA-256 of the name, and the
request and expiry times. Fences live in the agent's own changelogged table, so they survive
restarts and rebalances with the state they guard: per partition, 256 buckets by the digest's
first byte (`~fences:<partition>:<xx>`, so an erasure rewrites small values) and a summary of
the buckets in use with their earliest expiry (`~fences:<partition>`, read once per message; a
partition known to have none, the usual case, is not looked up again until a rebalance).
Expired fences are deleted with the next message the partition processes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime
from typing import Protocol

import orjson

from processor.metrics import Metrics

#: Every stored fence value starts with this, so readers of the table can tell it from a person.
MARKER = b'{"fences":'

Fence = tuple[float, float]  # (erasure requested at, expires at), epoch seconds


class Store(Protocol):
    """What fences need of one partition of a table: a dict will do."""

    def get(self, key: bytes, default: bytes | None = None, /) -> bytes | None: ...
    def __setitem__(self, key: bytes, value: bytes, /) -> None: ...
    def pop(self, key: bytes, default: bytes | None = None, /) -> bytes | None: ...


class Table(Protocol):
    """What fences need of a table: its partitions (the agents pass their coalesced writes)."""

    def at(self, partition: int, /) -> Store: ...


def key_of(partition: int, bucket: str | None = None) -> bytes:
    """The table key of a partition's fence summary, or of one of its buckets."""
    if bucket is None:
        return b"~fences:%d" % partition
    return b"~fences:%d:%s" % (partition, bucket.encode())


def is_fences(raw: bytes | None) -> bool:
    """Is this stored value a fence summary or bucket (not a person or a forwarding marker)?"""
    return raw is not None and raw.startswith(MARKER)


def count_dropped(metrics: Metrics, stage: str, label: str) -> None:
    """Count an event a fence dropped; it counts as processed (nothing more is done with it)."""
    metrics.erased_dropped.labels(stage).inc()
    metrics.events_processed.labels(label).inc()


def digest(name: str) -> str:
    """What a fence stores of a name: not reversible to the identifier."""
    return hashlib.sha256(name.encode()).hexdigest()[:32]


class Fences:
    """The fences of one table, per partition, read through a small cache of stored values.

    Summary and bucket values both map a name to a list whose last element is an expiry
    (`[expires]` per bucket in a summary, `[requested, expires]` per digest in a bucket).
    """

    def __init__(self, table: Table, window_s: float) -> None:
        self._table = table
        self._window_s = window_s
        #: key -> (stored bytes, value, earliest expiry in it)
        self._cache: dict[bytes, tuple[bytes, dict[str, list[float]], float]] = {}
        #: Partitions known to hold no fence: `live` answers for them without a look-up.
        #: Only the agent writes fences, so this holds until a rebalance (`forget`) brings
        #: what another worker wrote.
        self._none: set[int] = set()

    def forget(self) -> None:
        """Drop what is cached: a rebalance may have restored fences from the changelog."""
        self._cache.clear()
        self._none.clear()

    def _read(self, store: Store, key: bytes) -> tuple[dict[str, list[float]], float]:
        """The value at `key` and its earliest expiry (inf for none)."""
        raw = store.get(key)
        if raw is None:
            self._cache.pop(key, None)
            return {}, float("inf")
        cached = self._cache.get(key)
        if cached is None or cached[0] != raw:
            cached = self._remember(key, raw, orjson.loads(raw)["fences"])
        return cached[1], cached[2]

    def _remember(
        self, key: bytes, raw: bytes, value: dict[str, list[float]]
    ) -> tuple[bytes, dict[str, list[float]], float]:
        cached = (raw, value, min(v[-1] for v in value.values()))
        self._cache[key] = cached
        return cached

    def _write(self, store: Store, key: bytes, value: dict[str, list[float]]) -> float:
        """Store `value` (none deletes the key); returns its earliest expiry."""
        if not value:
            store.pop(key, None)
            self._cache.pop(key, None)
            return float("inf")
        raw = orjson.dumps({"fences": value})
        store[key] = raw
        return self._remember(key, raw, value)[2]

    def live(self, partition: int, now: datetime) -> bool:
        """Delete the fences of `partition` whose window has passed; are any left?

        No look-up when the partition has no fences (the usual case)."""
        if partition in self._none:
            return False
        store = self._table.at(partition)
        summary, earliest = self._read(store, key_of(partition))
        if not summary:
            self._none.add(partition)
            return False
        t = now.timestamp()
        if earliest > t:
            return True
        summary = dict(summary)
        for b, (expires,) in list(summary.items()):
            if expires <= t:
                key = key_of(partition, b)
                kept = {d: f for d, f in self._read(store, key)[0].items() if f[1] > t}
                left = self._write(store, key, kept)
                if left == float("inf"):
                    del summary[b]
                else:
                    summary[b] = [left]
        self._write(store, key_of(partition), summary)
        return bool(summary)

    def blocks(self, partition: int, names: Iterable[str], occurred: datetime) -> bool:
        """Does a fence here cover one of `names` for an event that occurred then?"""
        store = self._table.at(partition)
        summary = self._read(store, key_of(partition))[0]
        when = occurred.timestamp()
        for name in names:
            d = digest(name)
            if d[:2] in summary:
                fence = self._read(store, key_of(partition, d[:2]))[0].get(d)
                if fence is not None and when <= fence[0]:
                    return True
        return False

    def add(self, partition: int, names: Iterable[str], requested: datetime, now: datetime) -> None:
        """Fence `names` (an erasure requested at `requested`) for the configured window."""
        if self._window_s <= 0:
            return
        fence = [requested.timestamp(), now.timestamp() + self._window_s]
        self._none.discard(partition)
        store = self._table.at(partition)
        summary = dict(self._read(store, key_of(partition))[0])
        for name in names:
            d = digest(name)
            key = key_of(partition, d[:2])
            summary[d[:2]] = [self._write(store, key, {**self._read(store, key)[0], d: fence})]
        self._write(store, key_of(partition), summary)
