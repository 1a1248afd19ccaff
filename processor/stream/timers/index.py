"""The due-timer index: which people owned by this worker have a timer due, and when.

Timers themselves live in each person's journey state, in the changelogged table, so they
survive crashes, restarts and moves to another worker. This index is only derived from that
state: rebuilt from the table after every rebalance, kept current by the journey agent, and
consulted by a periodic tick that sends a `timer` envelope for each person who has a timer due.
The envelope goes through the customer-events topic like any event, so the firing happens inside
stream processing, in order with that person's events, and its table writes are changelogged.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable

from processor.journey.state import CustomerState, first_due


class TimerIndex:
    """Per-partition min-heaps of (due, key). Entries may be stale (a cancelled or moved timer);
    every candidate is re-checked against the table before it is fired, and the agent re-notes
    the person after processing, so a stale entry costs one look-up and nothing else."""

    def __init__(self) -> None:
        self._heaps: dict[int, list[tuple[float, bytes]]] = {}
        #: key -> epoch seconds a timer envelope was sent; not re-sent before `resend_after_s`.
        self._inflight: dict[bytes, float] = {}
        #: key -> the due time of its live entry. Most people have a timer pending (the lapse
        #: clock), so without this every event would push one more entry for the same due time.
        self._indexed: dict[bytes, float] = {}
        #: While a rebuild reads the table, what the agent noted meanwhile: key -> (partition,
        #: due or None). The rebuild's snapshot predates these, so they win over it.
        self._since_snapshot: dict[bytes, tuple[int, float | None]] | None = None
        #: The latest rebuild's snapshot: an older rebuild still scanning is superseded.
        self._generation = 0

    def note(self, partition: int, key: bytes, state: CustomerState | None) -> None:
        """Record the person's next due time after their state changed."""
        self._inflight.pop(key, None)
        due = first_due(state)
        if self._since_snapshot is not None:
            self._since_snapshot[key] = (partition, due)
        if due is None:
            self._indexed.pop(key, None)
        elif self._indexed.get(key) != due:
            self.push(partition, due, key)

    def snapshot_taken(self) -> int:
        """A rebuild has read the table: keep the notes made from now on for `reset`. Returns
        the rebuild's generation. A rebalance that completes while an earlier rebuild still
        scans starts another; the newer snapshot holds everything noted before it."""
        self._generation += 1
        self._since_snapshot = {}
        return self._generation

    def reset(
        self, entries: Iterable[tuple[int, bytes, float]], generation: int | None = None
    ) -> int | None:
        """Replace the index with (partition, key, due) entries from a table snapshot, plus
        whatever the agent noted after the snapshot was taken; returns how many entries.

        With the `generation` of its snapshot, a rebuild that a newer one superseded changes
        nothing and gets None: installing it would drop what the agent noted since the newer
        snapshot, and a timer armed then would never fire.
        """
        if generation is not None and generation != self._generation:
            return None
        later = self._since_snapshot or {}
        self._since_snapshot = None
        self._heaps = {}
        self._inflight = {}
        self._indexed = {}
        n = 0
        for partition, key, due in entries:
            if key in later:
                continue
            self._heaps.setdefault(partition, []).append((due, key))
            self._indexed[key] = due
            n += 1
        for key, (partition, noted) in later.items():
            if noted is not None:
                self._heaps.setdefault(partition, []).append((noted, key))
                self._indexed[key] = noted
                n += 1
        for heap in self._heaps.values():
            heapq.heapify(heap)
        return n

    def pending(self) -> int:
        """Entries in the index (an upper bound of the people with pending timers)."""
        return sum(len(h) for h in self._heaps.values())

    def push(self, partition: int, due: float, key: bytes) -> None:
        """Add one (due, key) entry."""
        heapq.heappush(self._heaps.setdefault(partition, []), (due, key))
        self._indexed[key] = due

    def due(
        self, partitions: Iterable[int], now: float, *, resend_after_s: float, limit: int
    ) -> list[tuple[int, bytes]]:
        """Pop up to `limit` distinct (partition, key) candidates due by `now`.

        The caller checks each against the table, sends an envelope and `push`es it back (so a
        lost envelope is sent again after `resend_after_s`), or drops it when nothing is due.
        """
        out: list[tuple[int, bytes]] = []
        seen: set[bytes] = set()
        for partition in partitions:
            heap = self._heaps.get(partition)
            if not heap:
                continue
            deferred: list[tuple[float, bytes]] = []
            while heap and heap[0][0] <= now and len(out) < limit:
                due, key = heapq.heappop(heap)
                if key in seen:
                    continue
                sent = self._inflight.get(key)
                if sent is not None and now - sent < resend_after_s:
                    deferred.append((due, key))
                    continue
                seen.add(key)
                if self._indexed.get(key) == due:
                    del self._indexed[key]  # the caller pushes it back if it is still due
                out.append((partition, key))
            for entry in deferred:
                heapq.heappush(heap, entry)
        return out

    def sent(self, key: bytes, now: float) -> None:
        """Remember that a timer envelope for `key` is on its way."""
        self._inflight[key] = now
