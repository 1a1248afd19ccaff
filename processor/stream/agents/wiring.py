"""The agents: thin adapters from Kafka messages to the pure cores and back.

ingest (inbound topics; agents/ingest.py, a service of the worker, not an agent) → straight
to customer-events (by person: an event with a customer id; its other identifiers, if any, go
to identity-links as a `link`) or identity-links (one partition: the graph) or identity-routes
(by identifier: the aliases) → journey (the state).

Each agent takes its records into one checkpoint at a time (commit/units.py); what it sends to
the three internal topics travels in bundles, one record per partition per checkpoint
(commit/bundles.py), and the receiving agent handles a bundle's messages one by one, in order.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from processor import logs
from processor.stream import observe
from processor.stream.agents import deadletters
from processor.stream.agents.identity import handle_link, handle_route
from processor.stream.agents.journey import handle_customer
from processor.stream.app import Runtime
from processor.stream.commit import bundles
from processor.stream.commit.checkpoint import Checkpoint, OutputTooLarge

log = logging.getLogger(__name__)

#: An agent's handler of one message: (runtime, checkpoint, key, value, partition).
Work = Callable[[Runtime, Checkpoint, bytes, bytes, int], None]


def _each_message(rt: Runtime, stage: str, work: Work) -> Callable[[Checkpoint, Any], None]:
    """The unit's handler of one record: `work` for each message the record carries (a bundle's
    in order, stream/commit/bundles.py), each contained on its own."""

    def handle(cp: Checkpoint, event: Any) -> None:
        m = event.message
        for key, value in _unbundled(rt, cp, stage, m):
            try:
                work(rt, cp, key or b"", value, m.partition)
            except OutputTooLarge as exc:  # nothing was kept for it (Checkpoint.check)
                src = deadletters.source_of(m)
                deadletters.send(rt, cp, deadletters.too_large(exc), value, src, stage)
            except Exception as exc:
                _failed(rt, cp, stage, m, value, exc)

    return handle


def _unbundled(
    rt: Runtime, cp: Checkpoint, stage: str, message: Any
) -> Sequence[tuple[bytes | None, bytes]]:
    """The messages an internal record carries (stream/commit/bundles.py). A bundle that cannot be
    read (a bug) is dead-lettered whole."""
    try:
        return bundles.messages(message.key, message.value)
    except ValueError as exc:
        _failed(rt, cp, stage, message, message.value, exc)
        return ()


def _failed(
    rt: Runtime, cp: Checkpoint, stage: str, message: Any, value: bytes | None, exc: Exception
) -> None:
    """Log and count a processing error, and dead-letter `value` with the message's source.

    A message whose handling raised (a bug) is kept this way, for replay after a fix, instead
    of being lost or stopping its partition (faust-pitfalls #2)."""
    where = logs.record_fields(message.topic, message.partition, message.offset)
    log.error("%s failed for %s[%s]@%s", stage, message.topic, message.partition,
              message.offset, exc_info=exc, extra=where)  # fmt: skip
    rt.metrics.processing_errors.labels(stage).inc()
    src = deadletters.source_of(message)
    deadletters.send(rt, cp, deadletters.internal(exc), value, src, stage)


def install(rt: Runtime) -> None:
    """Register the agents on the app (each with concurrency 1: faust-pitfalls #1)."""

    @rt.app.agent(rt.identity_links, name="identity-links")
    async def links(stream: Any) -> None:
        await rt.links_unit.run(stream, _each_message(rt, "identity", handle_link))

    @rt.app.agent(rt.identity_routes, name="identity-routes")
    async def routes(stream: Any) -> None:
        await rt.routes_unit.run(stream, _each_message(rt, "identity", handle_route))

    @rt.app.agent(rt.customer_events, name="journey")
    async def journey(stream: Any) -> None:
        await rt.journey_unit.run(stream, _each_message(rt, "journey", handle_customer))

    async def forget_cached(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        """What the fences and the known links cached may be out of date once partitions
        move or their tables are restored from the changelogs; the units' positions start
        afresh."""
        rt.fences.forget()
        rt.graph_fences.forget()
        rt.linked.forget()
        for unit in (rt.journey_unit, rt.links_unit, rt.routes_unit):
            unit.positions.forget()

    app = rt.app
    for moved in (app.on_partitions_revoked, app.on_partitions_assigned, app.on_rebalance_complete):
        moved.connect(forget_cached)

    observe.install(rt)
