"""The agents: thin adapters from Kafka messages to the pure cores and back.

ingest (inbound topics; stream/ingest.py, a service of the worker, not an agent) → straight to
customer-events (by person: an event with a customer id; its other identifiers, if any, go to
identity-links as a `link`) or identity-links (one partition: the graph) or identity-routes (by
identifier: the aliases) → journey (the state).

What an agent sends to the three internal topics travels in bundles, one record per partition
per unit (stream/bundles.py); each agent handles a bundle's messages one by one, in order.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from processor.stream import bundles, deadletters, observe, writes
from processor.stream.app import Runtime
from processor.stream.identity import handle_link, handle_route
from processor.stream.journey import handle_customer

log = logging.getLogger(__name__)


async def _contained(
    rt: Runtime, stage: str, message: Any, value: bytes | None, label: str, work: Any
) -> None:
    """Run `work` on `value` (the message's, or one of its bundle's); if it raises (a bug),
    dead-letter that value instead of losing it.

    Faust acks and commits a message whose handler raised (faust-pitfalls #2), and a raising
    agent would stop its partition; neither may happen to a valid message.
    """
    try:
        await work
    except writes.OutputTooLarge as exc:  # nothing was sent for it (writes.check)
        src = deadletters.source_of(message)
        await deadletters.send(rt, deadletters.too_large(exc), value, src, label)
    except Exception as exc:
        await _failed(rt, stage, message, value, label, exc)


async def _unbundled(rt: Runtime, stage: str, message: Any) -> Sequence[tuple[bytes | None, bytes]]:
    """The messages an internal record carries (stream/bundles.py). A bundle that cannot be
    read (a bug) is dead-lettered whole, as `_contained` does with a message."""
    try:
        return bundles.messages(message.key, message.value)
    except ValueError as exc:
        await _failed(rt, stage, message, message.value, stage, exc)
        return ()


async def _failed(
    rt: Runtime, stage: str, message: Any, value: bytes | None, label: str, exc: Exception
) -> None:
    """Log and count a processing error, and dead-letter `value` with the message's source."""
    log.error("%s failed for %s[%s]@%s", stage, message.topic, message.partition,
              message.offset, exc_info=exc)  # fmt: skip
    rt.metrics.processing_errors.labels(stage).inc()
    src = deadletters.source_of(message)
    await deadletters.send(rt, deadletters.internal(exc), value, src, label)


def install(rt: Runtime) -> None:
    """Register the agents on the app (each with concurrency 1: faust-pitfalls #1)."""

    @rt.app.agent(rt.identity_links, name="identity-links")
    async def links(stream: Any) -> None:
        async for event in rt.links_unit.events(stream):
            m = event.message
            for _, value in await _unbundled(rt, "identity", m):
                work = handle_link(rt, value, m.partition)
                await _contained(rt, "identity", m, value, "identity", work)

    @rt.app.agent(rt.identity_routes, name="identity-routes")
    async def routes(stream: Any) -> None:
        async for event in rt.routes_unit.events(stream):
            m = event.message
            for key, value in await _unbundled(rt, "identity", m):
                work = handle_route(rt, key or b"", value)
                await _contained(rt, "identity", m, value, "identity", work)

    @rt.app.agent(rt.customer_events, name="journey")
    async def journey(stream: Any) -> None:
        async for event in rt.journey_unit.events(stream):
            m = event.message
            for key, value in await _unbundled(rt, "journey", m):
                await handle_customer(rt, key or b"", value, m.partition)

    observe.install(rt)
