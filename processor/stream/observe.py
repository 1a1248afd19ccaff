"""Metrics the agents feed: people per stage kept exact across rebalances, latency and lag."""

from __future__ import annotations

import logging
import time
from collections import Counter, deque
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson

from processor import topics as t
from processor.journey.state import CustomerState
from processor.metrics import Metrics
from processor.stream.extensions import internals

if TYPE_CHECKING:
    from processor.journey.engine import Outcome
    from processor.stream.agents.envelope import Source
    from processor.stream.app import Runtime

log = logging.getLogger(__name__)

#: How often lag and the status page's rate samples are taken. Prometheus scrapes every 15 s
#: by default, so 1 s is fresh enough; reading a position costs one hop to the consumer thread.
SAMPLE_INTERVAL_S = 1.0
#: The status page's rates are averaged over this window (seconds), like a short `rate()`.
RATE_WINDOW_S = 30.0
#: Changelogs are read only to recover or follow as a standby, so their lag is not reported.
_CHANGELOG_SUFFIX = "-changelog"

Move = tuple[int, str | None, str | None]


class StageCounts:
    """People per stage, per owned partition of the customer-events topic.

    A recount reads the table as it was at one instant (stream/timers/scan.py), with yields; moves
    that happen during the scan are logged and replayed onto the result, so the counts are
    exact however the scan and the agent interleave. A newer recount supersedes an older one
    still running. Moves on a partition not counted yet are ignored: its recount's snapshot
    will include them.
    """

    def __init__(self) -> None:
        self._by_partition: dict[int, Counter[str]] = {}
        #: The sum of `_by_partition`, kept with every move: the gauge is set per event, and
        #: summing the partitions each time cost 3 % of the worker's CPU.
        self._total: Counter[str] = Counter()
        #: Moves since the running recount's snapshot; None while no recount runs.
        self._log: list[Move] | None = None
        self._generation = 0

    def move(self, partition: int, before: str | None, after: str | None) -> bool:
        """Record one person's stage change; True when the totals changed."""
        if before == after:
            return False
        if self._log is not None:
            self._log.append((partition, before, after))
        counts = self._by_partition.get(partition)
        if counts is None:
            return False
        _apply(counts, before, after)
        _apply(self._total, before, after)
        return True

    def begin(self) -> int:
        """Start a recount: returns its generation; call right before taking the snapshot."""
        self._generation += 1
        self._log = []
        return self._generation

    def finish(self, generation: int, counts: dict[int, Counter[str]], owned: set[int]) -> bool:
        """Install a recount's result unless a newer one started; True when installed."""
        if generation != self._generation:
            return False
        for partition, before, after in self._log or ():
            if partition in counts:
                _apply(counts[partition], before, after)
        self._log = None
        self._by_partition = {p: counts.get(p, Counter()) for p in owned}
        self._total = _summed(self._by_partition.values())
        return True

    def keep_only(self, owned: Iterable[int]) -> None:
        """Stop counting partitions this worker no longer owns."""
        keep = set(owned)
        self._by_partition = {p: c for p, c in self._by_partition.items() if p in keep}
        self._total = _summed(self._by_partition.values())

    def totals(self) -> Counter[str]:
        """People per stage over the counted partitions (a copy)."""
        return Counter(self._total)

    def total(self, stage: str) -> int:
        """People in `stage` over the counted partitions."""
        return self._total.get(stage, 0)

    def partitions(self) -> set[int]:
        """The partitions counted now."""
        return set(self._by_partition)


def _summed(partitions: Iterable[Counter[str]]) -> Counter[str]:
    out: Counter[str] = Counter()
    for counts in partitions:
        out.update(counts)
    return out


def _apply(counts: Counter[str], before: str | None, after: str | None) -> None:
    if before is not None:
        counts[before] -= 1
    if after is not None:
        counts[after] += 1


@dataclass
class Observer:
    """A worker's observation state: stage counts, recent totals for rates, lag by partition."""

    stages: StageCounts = field(default_factory=StageCounts)
    #: (monotonic s, consumed, processed, actions, dead letters), newest last.
    samples: deque[tuple[float, float, float, float, float]] = field(
        default_factory=lambda: deque(maxlen=int(RATE_WINDOW_S / SAMPLE_INTERVAL_S) + 1)
    )
    lag: dict[tuple[str, int], int] = field(default_factory=dict)


def publish_stages(metrics: Metrics, known: Iterable[str], counts: Counter[str]) -> None:
    """Set the per-stage gauge; only declared stages, so the label stays bounded."""
    for stage in known:
        metrics.customers.labels(stage).set(max(0, counts.get(stage, 0)))


def publish_moved(rt: Runtime, before: str | None, after: str | None) -> None:
    """Set the per-stage gauge of the two stages a person moved between."""
    known, stages, m = rt.journey.stages, rt.observer.stages, rt.metrics
    for stage in (before, after):
        if stage is not None and stage in known:
            m.child(m.customers, stage).set(max(0, stages.total(stage)))


def counter_total(metric: Any) -> float:
    """The sum of a counter over all its labels."""
    return float(
        sum(s.value for mf in metric.collect() for s in mf.samples if s.name.endswith("_total"))
    )


# The agents call these one-liners; each is cheap and never raises into the stream.


def event_processed(rt: Runtime, channel: str, occurred_at: datetime, now: datetime) -> None:
    """Observe event time → processed."""
    rt.metrics.child(rt.metrics.event_latency, channel).observe(
        max(0.0, (now - occurred_at).total_seconds())
    )


def emitted(
    rt: Runtime, partition: int, before: CustomerState | None, out: Outcome, src: Source
) -> None:
    """After an outcome was written and sent: move the stage count, observe publish → action."""
    old = before.stage if before is not None else None
    new = out.state.stage if out.state is not None else None
    obs = rt.observer
    if obs.stages.move(partition, old, new):
        publish_moved(rt, old, new)
    if out.actions and src.timestamp_ms is not None:
        waited = max(0.0, time.time() - src.timestamp_ms / 1000)
        for _ in out.actions:
            rt.metrics.action_latency.observe(waited)


def settled(
    rt: Runtime, partition: int, before: CustomerState | None, raw_after: bytes | None
) -> None:
    """After the person at a key merged away or was purged: `raw_after` is what the key holds."""
    after = _stage_of(raw_after)
    old = before.stage if before is not None else None
    if rt.observer.stages.move(partition, old, after):
        publish_moved(rt, old, after)


def _stage_of(raw: bytes | None) -> str | None:
    """The stage stored at a key; None for no person, or a marker pointing to a merged one."""
    if raw is None:
        return None
    held = orjson.loads(raw)
    if not isinstance(held, dict) or "moved" in held or "fences" in held:
        return None
    return CustomerState.from_dict(held).stage


# Rebalances and sampling.


def owned(rt: Runtime, tps: Iterable[Any] | None = None) -> set[int]:
    """Customer-events partitions among `tps` (default: this worker's active ones)."""
    source = rt.app.assignor.assigned_actives() if tps is None else tps
    return {tp.partition for tp in source if tp.topic == t.CUSTOMER_EVENTS}


class Recount:
    """People per stage counted afresh from the table, for the partitions in `mine`.

    Create it right before the table's snapshot is taken, with no await in between (moves from
    then on are logged), `add` every person the snapshot holds, then `finish`. The clock's
    rebuild does this after every rebalance, in the same scan as the timer index (clock.py).
    """

    def __init__(self, rt: Runtime, mine: set[int]) -> None:
        self._rt = rt
        self._mine = mine
        self._generation = rt.observer.stages.begin()
        self._counts: dict[int, Counter[str]] = {p: Counter() for p in mine}

    def add(self, partition: int, stage: str) -> None:
        """Count one person of the snapshot."""
        counts = self._counts.get(partition)
        if counts is not None:
            counts[stage] += 1

    def finish(self, cut: Collection[int] = ()) -> bool:
        """Install the counts unless a newer recount started; `cut`: partitions revoked before
        the scan read them all, no longer counted. True when installed."""
        rt, stages = self._rt, self._rt.observer.stages
        if not stages.finish(self._generation, self._counts, self._mine - set(cut)):
            return False
        publish_stages(rt.metrics, rt.journey.stages, stages.totals())
        return True


async def sample(rt: Runtime) -> None:
    """Take one sample: consumer lag per source partition (the agents' from Faust's consumer,
    the inbound topics' from ingest), and totals for the status rates."""
    m, obs, consumer = rt.metrics, rt.observer, rt.app.consumer
    lag: dict[tuple[str, int], int] = {}
    # Faust's own record of the offsets it committed (the next offset to read) per partition.
    committed = internals.committed_offsets(consumer)
    tps = [tp for tp in consumer.assignment() if not tp.topic.endswith(_CHANGELOG_SUFFIX)]
    # Each partition's end as the broker has it now. What the last fetch saw is no measure:
    # under overload the fetcher stops fetching partitions whose messages wait in the worker's
    # buffers, and their lag read as low as a quarter of the real one.
    try:
        ends: Mapping[Any, int] = await consumer.highwaters(*tps) if tps else {}
    except Exception:  # the broker away or a rebalance under way: what the fetches saw
        ends = {}
    for tp in tps:
        # Behind the end is everything not yet processed and committed, as Kafka's
        # consumer-group lag counts it: messages fetched but still waiting in the worker's
        # buffers are lag too. Before this worker's first commit on it: the fetch position.
        highwater = ends.get(tp, consumer.highwater(tp))
        done = committed.get(tp)
        if done is None:
            done = await consumer.position(tp)
        if highwater is not None and done is not None:
            lag[(tp.topic, tp.partition)] = max(0, highwater - done)
    if rt.ingest is not None:
        try:
            lag.update(await rt.ingest.lag())
        except Exception:  # the broker away or a rebalance under way: the last values stay
            lag.update({
                tp: n for tp, n in obs.lag.items() if t.group_of(tp[0]) == t.INGEST_GROUP
            })  # fmt: skip
    for gone in obs.lag.keys() - lag.keys():
        m.consumer_lag.remove(gone[0], str(gone[1]))
    for (topic, partition), behind in lag.items():
        m.consumer_lag.labels(topic, str(partition)).set(behind)
    obs.lag = lag
    obs.samples.append(
        (
            time.monotonic(),
            counter_total(m.messages_consumed),
            counter_total(m.events_processed),
            counter_total(m.actions),
            counter_total(m.deadletters),
        )
    )


def install(rt: Runtime) -> None:
    """Drop lost partitions from the stage counts at once, sample periodically. (The stages
    are recounted after every rebalance by the clock's rebuild: one scan of the table.)"""
    j = rt.journey
    rt.metrics.expect(
        {(s.action, s.template) for s in j.steps if s.action and s.template},
        timed=[*j.step_by_name, *(t.name for t in j.transitions)],
    )

    @rt.app.on_partitions_assigned.connect
    async def _assigned(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        # Before recovery: a partition that moved away must not be counted twice meanwhile.
        rt.observer.stages.keep_only(owned(rt, args[0]))
        publish_stages(rt.metrics, rt.journey.stages, rt.observer.stages.totals())

    @rt.app.timer(interval=SAMPLE_INTERVAL_S)  # type: ignore[untyped-decorator]
    async def _sample() -> None:
        try:
            await sample(rt)
        except Exception:
            # A failed sample leaves the last values; the next tick tries again.
            log.exception("metrics sample failed")
