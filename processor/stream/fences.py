"""Erasure fences: a person's events that were already on their way when they were erased.

`erase_customer` removes the person everywhere, but events published before it can still be
queued on other partitions and arrive afterwards. Without a fence such an event would start a
new person from an identifier of the erased one, and something about them would be emitted
after the receipt.

So for `erasure_fence_s` after an erasure, the two places where a person can start keep a
fence: the link agent (for events with several identifiers, which would re-link the graph) and
the journey agent (for everything else, at every key the person had). An event that carries a
fenced name and *occurred at or before* the erasure request is dropped and counted
(`erased_events_dropped_total`); nothing is emitted for it. An event that occurred after the
request is a new person, as it should be.

A fence holds no identifier: it stores the first 128 bits of the SHA-256 of the name, and the
request and expiry times. The fences of a partition live under one key, `~fences:<partition>`,
in the agent's own changelogged table, so they survive restarts and rebalances with the state
they guard. Expired fences are deleted with the next message the partition processes.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, MutableMapping
from datetime import datetime

import orjson

log = logging.getLogger(__name__)

#: Every stored fence set starts with this, so readers of the table can tell it from a person.
MARKER = b'{"fences":'
#: A partition keeps at most this many fences (about 60 bytes each); the oldest go first.
LIMIT = 10_000

Fence = tuple[float, float]  # (erasure requested at, expires at), epoch seconds


def key_of(partition: int) -> bytes:
    """The table key of a partition's fences."""
    return b"~fences:%d" % partition


def is_fences(raw: bytes | None) -> bool:
    """Is this stored value a fence set (not a person or a forwarding marker)?"""
    return raw is not None and raw.startswith(MARKER)


def digest(name: str) -> str:
    """What a fence stores of a name: not reversible to the identifier."""
    return hashlib.sha256(name.encode()).hexdigest()[:32]


class Fences:
    """The fences of one table, per partition, read through a small cache."""

    def __init__(self, table: MutableMapping[bytes, bytes], window_s: float) -> None:
        self._table = table
        self._window_s = window_s
        #: partition -> (stored bytes, fences, earliest expiry)
        self._cache: dict[int, tuple[bytes, dict[str, Fence], float]] = {}

    def _load(self, partition: int) -> dict[str, Fence]:
        raw = self._table.get(key_of(partition))
        if raw is None:
            self._cache.pop(partition, None)
            return {}
        cached = self._cache.get(partition)
        if cached is not None and cached[0] == raw:
            return cached[1]
        stored = orjson.loads(raw)["fences"]
        fences = {name: (float(at), float(until)) for name, (at, until) in stored.items()}
        self._remember(partition, raw, fences)
        return fences

    def _remember(self, partition: int, raw: bytes, fences: dict[str, Fence]) -> None:
        self._cache[partition] = (raw, fences, min(f[1] for f in fences.values()))

    def _store(self, partition: int, fences: dict[str, Fence]) -> None:
        if not fences:
            self._table.pop(key_of(partition), None)
            self._cache.pop(partition, None)
            return
        raw = orjson.dumps({"fences": {name: list(f) for name, f in fences.items()}})
        self._table[key_of(partition)] = raw
        self._remember(partition, raw, fences)

    def blocks(self, partition: int, names: Iterable[str], occurred: datetime) -> bool:
        """Does a fence here cover one of `names` for an event that occurred then?"""
        fences = self._load(partition)
        if not fences:
            return False
        when = occurred.timestamp()
        for name in names:
            fence = fences.get(digest(name))
            if fence is not None and when <= fence[0]:
                return True
        return False

    def add(self, partition: int, names: Iterable[str], requested: datetime, now: datetime) -> None:
        """Fence `names` (an erasure requested at `requested`) for the configured window."""
        if self._window_s <= 0:
            return
        fences = dict(self._load(partition))
        fence = (requested.timestamp(), now.timestamp() + self._window_s)
        for name in names:
            fences[digest(name)] = fence
        if len(fences) > LIMIT:
            log.warning("more than %d erasure fences on partition %d: the oldest expire early",
                        LIMIT, partition)  # fmt: skip
            keep = sorted(fences.items(), key=lambda item: item[1][1])[-LIMIT:]
            fences = dict(keep)
        self._store(partition, fences)

    def expire(self, partition: int, now: datetime) -> None:
        """Delete the fences of `partition` whose window has passed."""
        fences = self._load(partition)
        t = now.timestamp()
        if not fences or self._cache[partition][2] > t:
            return
        live = {name: f for name, f in fences.items() if f[1] > t}
        if len(live) != len(fences):
            self._store(partition, live)
