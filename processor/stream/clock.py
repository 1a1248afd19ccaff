"""The clock: rebuild the due-timer index after rebalances, and tick to fire what is due."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from processor import topics as t
from processor.stream.app import Runtime
from processor.stream.envelope import Source, pack
from processor.stream.journey import state_of
from processor.stream.timers import earliest_due, partition_of

log = logging.getLogger(__name__)

#: Timer envelopes carry no inbound coordinates; these mark them in logs and dead letters.
TIMER_SOURCE = Source("timer", -1, -1, None, None)
#: Keys scanned between yields to the event loop while rebuilding the index; a scan of a
#: million keys must not starve heartbeats (the session timeout is seconds).
_YIELD_EVERY = 1000


def owned_partitions(rt: Runtime) -> set[int]:
    """Partitions of the customer-events topic this worker is active for."""
    return {
        tp.partition for tp in rt.app.assignor.assigned_actives() if tp.topic == t.CUSTOMER_EVENTS
    }


async def rebuild(rt: Runtime) -> int:
    """Re-derive the index from the table for the partitions this worker owns now."""
    rt.clock_ready = False
    owned = owned_partitions(rt)
    partitions = rt.partitions
    entries: list[tuple[int, bytes, float]] = []
    started = time.monotonic()
    snapshot = list(rt.table.items())
    # The agent keeps processing while this loop yields: its notes from here on win (timers.py).
    rt.timer_index.snapshot_taken()
    for n, (key, raw) in enumerate(snapshot, 1):
        if n % _YIELD_EVERY == 0:
            await asyncio.sleep(0)
        # The memory store also holds standby and revoked keys: keep only what we own.
        partition = partition_of(key, partitions)
        if partition not in owned:
            continue
        due = earliest_due(state_of(raw))
        if due is not None:
            entries.append((partition, key, due))
    count = rt.timer_index.reset(entries)
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
        due = earliest_due(state_of(rt.table.get(key)))
        if due is None:
            continue
        rt.timer_index.push(partition, due, key)
        if due > now:
            continue
        await rt.customer_events.send(key=key, value=pack("timer", {}, "timer", TIMER_SOURCE))
        rt.timer_index.sent(key, now)
        sent += 1
    return sent


def install(rt: Runtime) -> None:
    """Register the rebuild on every completed rebalance, and the periodic tick."""

    @rt.app.on_rebalance_complete.connect
    async def _rebuilt(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        await rebuild(rt)

    @rt.app.on_partitions_revoked.connect
    async def _revoked(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        rt.clock_ready = False

    @rt.app.timer(interval=rt.settings.timer_tick_s)  # type: ignore[untyped-decorator]
    async def _tick() -> None:
        try:
            await tick(rt)
        except Exception:
            # A failed tick is retried by the next one; the timers stay in the table.
            log.exception("timer tick failed")
