"""The clock: rebuild the due-timer index after rebalances, and tick to fire what is due.

The rebuild's scan of the table also recounts people per stage (stream/observe.py): both are
derived from every person's state, so one read and one decode of each serves the two.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from processor import topics as t
from processor.journey.state import first_due
from processor.stream import observe
from processor.stream.agents.envelope import Kind, Source, pack
from processor.stream.agents.held import state_of
from processor.stream.app import Runtime
from processor.stream.timers.scan import Snapshot

log = logging.getLogger(__name__)

#: Timer envelopes carry no inbound coordinates; these mark them in logs and dead letters.
TIMER_SOURCE = Source("timer", -1, -1, None, None)


def owned_partitions(rt: Runtime) -> set[int]:
    """Partitions of the customer-events topic this worker is active for."""
    return {
        tp.partition for tp in rt.app.assignor.assigned_actives() if tp.topic == t.CUSTOMER_EVENTS
    }


async def rebuild(rt: Runtime) -> int:
    """Re-derive the index and the people per stage from the table, for the partitions this
    worker owns now; returns the index's entries."""
    rt.clock_ready = False
    owned = owned_partitions(rt)
    entries: list[tuple[int, bytes, float]] = []
    started = time.monotonic()
    # One instant, no await in between: stage moves from here on are logged (observe.py), the
    # snapshot is taken, and the agent's timer notes from here on win over it (timers.py).
    recount = observe.Recount(rt, owned)
    snapshot = Snapshot(rt.table, rt.partitions, owned)
    # The journey checkpoint in hand reaches the store only when it commits (commit/writes.py);
    # at this instant its changes are part of the table as much as what the snapshot shows.
    unreleased = {
        key: (partition, raw)
        for key, (partition, raw) in rt.journey_writes.unreleased().items()
        if partition in owned
    }
    generation = rt.timer_index.snapshot_taken()

    def add(partition: int, key: bytes, raw: bytes | None) -> None:
        state = state_of(raw)
        if state is None:
            return
        recount.add(partition, state.stage)
        due = first_due(state)
        if due is not None:
            entries.append((partition, key, due))

    async for batch in snapshot.batches():  # the agents run between batches
        for partition, key, raw in batch:
            if key not in unreleased:
                add(partition, key, raw)
    for key, (partition, value) in unreleased.items():
        add(partition, key, value)
    recount.finish(snapshot.cut)
    count = rt.timer_index.reset(entries, generation)
    if count is None:
        # A later rebalance's rebuild started meanwhile; it alone makes the clock ready.
        log.info("timer index rebuild superseded by a newer one after %.2f s",
                 time.monotonic() - started)  # fmt: skip
        return 0
    rt.metrics.timers_pending.set(count)
    rt.clock_ready = True
    log.info(
        "timer index rebuilt: %d people with timers on %d partitions in %.2f s",
        count, len(owned), time.monotonic() - started,
    )  # fmt: skip
    return count


async def tick(rt: Runtime) -> int:
    """Send a timer envelope for each owned person with a timer due; returns how many."""
    app = rt.app
    if not rt.clock_ready or app.rebalancing or not app.tables.actives_ready:
        return 0
    now = time.time()
    settings = rt.settings
    candidates = rt.timer_index.due(
        owned_partitions(rt), now,
        resend_after_s=settings.timer_resend_s, limit=settings.timer_batch,
    )  # fmt: skip
    sent = 0
    rt.metrics.timers_pending.set(rt.timer_index.pending())
    for partition, key in candidates:
        due = first_due(state_of(rt.table.get(key)))
        if due is None:
            continue
        rt.timer_index.push(partition, due, key)
        if due > now:
            continue
        await rt.customer_events.send(key=key, value=pack(Kind.timer, {}, "timer", TIMER_SOURCE))
        rt.timer_index.sent(key, now)
        sent += 1
    return sent


class Rebuilds:
    """At most one rebuild at a time, run beside the worker rather than inside the rebalance.

    Faust awaits its rebalance-complete signal before it resumes the agents, so a rebuild
    awaited there (a scan of every person the worker owns: seconds per million) would hold up
    processing and readiness. Run in the background instead, it overlaps with the agents, which
    its snapshot and the index's notes allow for (see `rebuild`); until it ends the clock fires
    nothing (`clock_ready`), so timers come due late, never lost. A newer rebalance or a
    revocation cancels the rebuild in hand.
    """

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt
        self._task: asyncio.Future[Any] | None = None

    def start(self) -> None:
        """Cancel the rebuild in hand, if any, and start another."""
        self.cancel()
        self._task = self._rt.app.add_future(rebuild(self._rt))

    def cancel(self) -> None:
        """Stop the rebuild in hand (the clock stays stopped until the next one ends)."""
        self._rt.clock_ready = False
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._task = None


def install(rt: Runtime) -> None:
    """Register the rebuild (timer index and stage counts) on every completed rebalance, and
    the periodic tick."""
    rebuilds = Rebuilds(rt)

    @rt.app.on_rebalance_complete.connect
    async def _rebuilt(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        rebuilds.start()

    @rt.app.on_partitions_revoked.connect
    async def _revoked(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        rebuilds.cancel()

    @rt.app.timer(interval=rt.settings.timer_tick_s)  # type: ignore[untyped-decorator]
    async def _tick() -> None:
        try:
            await tick(rt)
        except Exception:
            # A failed tick is retried by the next one; the timers stay in the table.
            log.exception("timer tick failed")
