"""The Faust app factory: topics, the journey table, agents and web views, wired from settings."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import faust

from processor import topics as t
from processor.journey.definition import Journey
from processor.kafka.clients import connection_kwargs, faust_credentials
from processor.metrics import Metrics
from processor.settings import Settings
from processor.stream.agents.fences import Fences
from processor.stream.agents.held import Decoded
from processor.stream.agents.linked import Linked
from processor.stream.commit.checkpoint import Layout
from processor.stream.commit.units import Unit
from processor.stream.commit.writes import Coalesced
from processor.stream.extensions.consumer import WorkerConsumer
from processor.stream.extensions.membership import Membership
from processor.stream.extensions.recovery import Tables
from processor.stream.extensions.scheduler import OldestFirst
from processor.stream.observe import Observer
from processor.stream.timers.index import TimerIndex

if TYPE_CHECKING:
    from processor.stream.agents.ingest import Ingest

#: A dead letter may carry a whole 1 MiB message escaped as JSON; see topics/touchpoints.deadletter.
MAX_REQUEST_BYTES = 8 * 1024 * 1024
#: Every event produces several records (re-keyed envelope, changelog, outputs). Without a
#: linger each goes out in a produce request of its own as soon as the sender runs, and those
#: requests cost more CPU than the work itself (the benchmark's profile); 5 ms batches them.
PRODUCER_LINGER_S = 0.005


@dataclass
class Runtime:
    """What the agents and views share: the app, its topics and table, the journey, metrics."""

    app: faust.App
    settings: Settings
    journey: Journey
    metrics: Metrics
    customer_events: Any
    table: Any
    partitions: int
    identity_links: Any
    identity_routes: Any
    #: Identifier -> its links and canonical key; one partition, one writer (the link agent).
    graph: Any
    #: Identifier -> canonical key, where that is not the identifier's own key.
    aliases: Any
    #: The declared topics as checkpoints write to them (partitions, bundles, record limits).
    layout: Layout
    timer_index: TimerIndex = field(default_factory=TimerIndex)
    #: False while a rebalance is under way or the index is being rebuilt: no ticks then.
    clock_ready: bool = False
    #: Each table's writes, released to its changelog when its agent's checkpoint commits, and
    #: the three agents' units (stream/commit/writes.py, stream/commit/units.py).
    journey_writes: Coalesced = field(init=False)
    graph_writes: Coalesced = field(init=False)
    alias_writes: Coalesced = field(init=False)
    journey_unit: Unit = field(init=False)
    links_unit: Unit = field(init=False)
    routes_unit: Unit = field(init=False)
    #: Stage counts, lag and rate samples for metrics and the status page (stream/observe.py).
    observer: Observer = field(default_factory=Observer)
    #: The states the journey agent stored last, kept decoded (stream/agents/held.py).
    decoded: Decoded = field(default_factory=Decoded)
    #: The customers' links the graph holds already (stream/agents/linked.py).
    linked: Linked = field(default_factory=Linked)
    #: Erasure fences of the journey table and of the graph (stream/agents/fences.py).
    fences: Fences = field(init=False)
    graph_fences: Fences = field(init=False)
    #: Whole days within which Kafka holds no copy of a record any more (topics/ settings),
    #: stated on erasure receipts; None when a topic's settings bound nothing.
    erasure_days: int | None = None
    #: The worker's ingest (stream/agents/ingest.py), once the worker made it.
    ingest: Ingest | None = None

    def ready(self) -> bool:
        """Processing: the tables of the assigned partitions recovered, no rebalance under
        way, and ingest has its partitions of the inbound topics."""
        app = self.app
        ingesting = self.ingest is None or self.ingest.assigned
        return bool(app.tables.actives_ready) and not app.rebalancing and ingesting

    def __post_init__(self) -> None:
        size = self.settings.batch_max
        self.journey_writes = Coalesced(self.table)
        self.graph_writes = Coalesced(self.graph)
        self.alias_writes = Coalesced(self.aliases)
        app, layout, every = self.app, self.layout, self.settings.commit_interval_s
        self.journey_unit = Unit("journey", app, layout, (self.journey_writes,), size, every)
        self.links_unit = Unit("identity-links", app, layout, (self.graph_writes,), size, every)
        self.routes_unit = Unit("identity-routes", app, layout, (self.alias_writes,), size, every)
        window = self.settings.erasure_fence_s
        self.fences = Fences(self.journey_writes, window)
        self.graph_fences = Fences(self.graph_writes, window)


def _whole_days(span: timedelta | None) -> int | None:
    return None if span is None else math.ceil(span / timedelta(days=1))


def create_app(
    settings: Settings, journey: Journey, metrics: Metrics, *, membership: Membership | None = None
) -> Runtime:
    """Build the worker's Faust app. Nothing connects until the worker starts it.

    With `membership`, the worker's place in the consumer group outlives the process
    (stream/extensions/membership.py); without, it leaves the group when it stops.
    """
    if not settings.kafka_bootstrap:
        raise ValueError("create_app needs TOUCHPOINT_KAFKA_BOOTSTRAP")
    brokers = ";".join(f"kafka://{b.strip()}" for b in settings.kafka_bootstrap.split(","))
    app = faust.App(
        t.APP_ID,
        broker=brokers,
        broker_credentials=faust_credentials(settings),
        store="rocksdb://" if settings.store == "rocksdb" else "memory://",
        datadir=str(settings.data_dir),
        autodiscover=False,
        # A fetch's records oldest first across partitions (stream/agents/ordering.py).
        ConsumerScheduler=OldestFirst,
        # Topics are created from topics/ by `touchpoint topics apply`, never implicitly.
        topic_allow_declare=False,
        # No on_leader timers: the leader-election topic would be one more undeclared topic.
        topic_disable_leader=True,
        broker_rebalance_timeout=settings.rebalance_timeout_s,
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=min(3.0, settings.session_timeout_s / 3),
        producer_max_request_size=MAX_REQUEST_BYTES,
        producer_linger=PRODUCER_LINGER_S,
        # Start from the oldest retained event: a new deployment must not skip what is waiting.
        consumer_auto_offset_reset="earliest",
        web_enabled=True,
        web_bind=settings.web_host,
        web_port=settings.web_port,
        web_host=settings.web_host,
        # Faust's own views read tables and the cluster's layout without a token (a person's
        # state at /table/journey/<id>/, an email's person at /table/aliases/e:<email>/): off.
        # The worker serves only its own routes (processor/web/), and those with personal data
        # ask for the API token.
        web_tables_enabled=False,
        web_router_enabled=False,
        web_graph_enabled=False,
        web_stats_enabled=False,
        web_metrics_enabled=False,
        # Faust's table manager, whose recovery reads the changelogs in bulk first.
        TableManager=Tables,
    )
    app.tables.bulk_connection = connection_kwargs(settings)  # type: ignore[attr-defined]
    app.membership = membership  # type: ignore[attr-defined]  # read by WorkerConsumerThread
    # This app's transport only: its consumer's fetches wait at most FETCH_MAX_WAIT_MS.
    app.transport.Consumer = WorkerConsumer  # type: ignore[misc]
    raw: dict[str, Any] = {
        "key_type": bytes,
        "value_type": bytes,
        "key_serializer": "raw",
        "value_serializer": "raw",
    }
    specs = t.load(settings.topics_dir)

    def source(name: str) -> Any:
        return app.topic(name, partitions=specs[name].partitions, **raw)

    def bytes_table(name: str, source: str) -> Any:
        # bytes in and out: Faust then uses its raw codec, and we encode values ourselves.
        return app.Table(
            name, partitions=specs[source].partitions, key_type=bytes, value_type=bytes
        )

    rt = Runtime(
        identity_links=source(t.IDENTITY_LINKS),
        identity_routes=source(t.IDENTITY_ROUTES),
        graph=bytes_table(t.GRAPH_TABLE, t.IDENTITY_LINKS),
        aliases=bytes_table(t.ALIAS_TABLE, t.IDENTITY_ROUTES),
        app=app,
        settings=settings,
        journey=journey,
        metrics=metrics,
        customer_events=source(t.CUSTOMER_EVENTS),
        table=bytes_table(t.JOURNEY_TABLE, t.CUSTOMER_EVENTS),
        partitions=specs[t.CUSTOMER_EVENTS].partitions,
        layout=Layout.of(specs),
        erasure_days=_whole_days(t.copies_gone_within(specs)),
    )
    return rt
