"""The metrics bundle: every Prometheus metric of the processor, on an injectable registry."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
)

from processor import __version__
from processor.events import CHANNELS_OF, Channel, EventType
from processor.messages import ErrorKind

PREFIX = "touchpoint"
#: Where a message came from, as a bounded label value: the inbound channel or `control`.
SOURCES = (*(c.value for c in Channel), "control")
#: The agents whose unexpected errors are counted (`processing_errors_total{stage}`).
PROCESSING_STAGES = ("ingest", "identity", "journey")


@dataclass(frozen=True)
class Metrics:
    """One worker's metrics. Labels are bounded and pre-initialised so dashboards show zeros."""

    registry: CollectorRegistry
    messages_consumed: Counter
    events_received: Counter
    events_processed: Counter
    duplicates: Counter
    deadletters: Counter
    transitions: Counter
    actions: Counter
    actions_suppressed: Counter
    timers_dropped: Counter
    processing_errors: Counter
    identity_links: Counter
    identity_merges: Counter
    identity_conflicts: Counter
    cross_channel_conversions: Counter
    erased_dropped: Counter
    timers_fired: Counter
    timer_lateness: Histogram
    timers_pending: Gauge
    customers: Gauge
    event_latency: Histogram
    action_latency: Histogram
    consumer_lag: Gauge
    build: Info
    #: Children by (metric, label values), for `child`.
    _children: dict[tuple[Any, tuple[str, ...]], Any] = field(
        default_factory=dict, repr=False, compare=False
    )

    @classmethod
    def create(
        cls, registry: CollectorRegistry | None = None, stages: tuple[str, ...] = ()
    ) -> Metrics:
        """Build the bundle on `registry` (a fresh one by default, so tests never share)."""
        r = registry if registry is not None else CollectorRegistry(auto_describe=True)
        # The standard process_* (CPU, memory, file descriptors) and python_* (version, garbage
        # collections) series that every Prometheus client exports by default.
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        m = cls(
            registry=r,
            messages_consumed=Counter(
                f"{PREFIX}_messages_consumed_total",
                "Inbound messages read, valid or not, by source.",
                ["source"],
                registry=r,
            ),
            events_received=Counter(
                f"{PREFIX}_events_received_total",
                "Valid touchpoint events accepted at ingest, by channel and type.",
                ["channel", "type"],
                registry=r,
            ),
            events_processed=Counter(
                f"{PREFIX}_events_processed_total",
                "Touchpoint events applied to journey state (duplicates included), by channel.",
                ["channel"],
                registry=r,
            ),
            duplicates=Counter(
                f"{PREFIX}_duplicate_events_total",
                "Events whose event_id was already processed for the same customer.",
                ["channel"],
                registry=r,
            ),
            deadletters=Counter(
                f"{PREFIX}_deadletters_total",
                "Inbound messages sent to the dead-letter topic, by source and error kind.",
                ["source", "kind"],
                registry=r,
            ),
            transitions=Counter(
                f"{PREFIX}_transitions_total",
                "Stage transitions emitted, by from and to stage (`none` for a new person).",
                ["from_stage", "to_stage"],
                registry=r,
            ),
            actions=Counter(
                f"{PREFIX}_actions_total",
                "Actions emitted, by action and template.",
                ["action", "template"],
                registry=r,
            ),
            actions_suppressed=Counter(
                f"{PREFIX}_actions_suppressed_total",
                "Actions a policy held back, by rule and reason.",
                ["rule", "reason"],
                registry=r,
            ),
            processing_errors=Counter(
                f"{PREFIX}_processing_errors_total",
                "Unexpected errors while processing a valid message (it is dead-lettered).",
                ["stage"],
                registry=r,
            ),
            identity_links=Counter(
                f"{PREFIX}_identity_links_total",
                "New links between two identifiers of one person.",
                registry=r,
            ),
            identity_merges=Counter(
                f"{PREFIX}_identity_merges_total",
                "Profiles found to be another person's and folded into theirs.",
                registry=r,
            ),
            identity_conflicts=Counter(
                f"{PREFIX}_identity_conflicts_total",
                "Links that tie identifiers to two customer ids (resolved to the smallest).",
                registry=r,
            ),
            cross_channel_conversions=Counter(
                f"{PREFIX}_cross_channel_conversions_total",
                "Store purchases by people with web or email touchpoints shortly before.",
                registry=r,
            ),
            erased_dropped=Counter(
                f"{PREFIX}_erased_events_dropped_total",
                "Events of an erased person that occurred before the erasure and arrived "
                "after it: dropped, nothing emitted.",
                ["stage"],
                registry=r,
            ),
            timers_fired=Counter(
                f"{PREFIX}_timers_fired_total",
                "Timers fired (waits, follow-ups and time-driven stage moves).",
                registry=r,
            ),
            timers_dropped=Counter(
                f"{PREFIX}_timers_dropped_total",
                "Timers dropped unfired because the journey file no longer has their rule or "
                "transition, by its name.",
                ["rule"],
                registry=r,
            ),
            timer_lateness=Histogram(
                f"{PREFIX}_timer_lateness_seconds",
                "How long after its due time a timer fired.",
                buckets=(0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400),
                registry=r,
            ),
            timers_pending=Gauge(
                f"{PREFIX}_timers_pending",
                "People owned by this worker with at least one pending timer (upper bound).",
                registry=r,
            ),
            customers=Gauge(
                f"{PREFIX}_customers",
                "People per stage on the partitions this worker owns; sum over workers.",
                ["stage"],
                registry=r,
            ),
            event_latency=Histogram(
                f"{PREFIX}_event_latency_seconds",
                "From an event's occurred_at to its processing, by channel.",
                ["channel"],
                # Event time includes the sender's own delay (a store uploading hourly), so the
                # buckets reach a day; sub-second ones show the pipeline itself.
                buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400),
                registry=r,
            ),
            action_latency=Histogram(
                f"{PREFIX}_action_latency_seconds",
                "From the inbound message's Kafka timestamp to the action it caused being sent.",
                buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
                registry=r,
            ),
            consumer_lag=Gauge(
                f"{PREFIX}_consumer_lag_messages",
                "Messages behind the end of each source partition this worker consumes.",
                ["topic", "partition"],
                registry=r,
            ),
            build=Info(f"{PREFIX}_build", "Version of the running processor.", registry=r),
        )
        m.build.info({"version": __version__})
        for source in SOURCES:
            m.messages_consumed.labels(source)
            for kind in ErrorKind:
                m.deadletters.labels(source, kind.value)
        for ch in Channel:
            m.events_processed.labels(ch.value)
            m.duplicates.labels(ch.value)
            m.event_latency.labels(ch.value)
        for event_type in EventType:
            for ch in CHANNELS_OF[event_type]:
                m.events_received.labels(ch.value, event_type.value)
        for where in PROCESSING_STAGES:
            m.processing_errors.labels(where)
        for where in ("identity", "journey"):
            m.erased_dropped.labels(where)
        for stage in stages:
            m.customers.labels(stage).set(0)
            m.transitions.labels("none", stage)
            for other in stages:
                if other != stage:
                    m.transitions.labels(other, stage)
        return m

    def child(self, metric: Any, *values: str) -> Any:
        """`metric.labels(*values)`, looked up once: `labels()` checks its arguments and takes a
        lock on every call, and the agents count several labelled metrics per event."""
        key = (metric, values)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*values)
        return found

    def expect(self, actions: Iterable[tuple[str, str]], timed: Iterable[str] = ()) -> None:
        """Pre-initialise the journey's (action, template) pairs and the names of its steps and
        transitions (whose timers a later file could drop), so that they show zeros."""
        for action, template in actions:
            self.actions.labels(action, template)
        for name in timed:
            self.timers_dropped.labels(name)
