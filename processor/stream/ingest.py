"""Ingest: decode and validate inbound messages, dead-letter the bad, route the good."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from processor.decode import Rejection, decode_control, decode_touchpoint
from processor.events import ControlCommand, Touchpoint
from processor.identity.graph import KIND_PREFIX, is_anchor, key_of, nodes_of
from processor.stream import deadletters, writes
from processor.stream.app import Runtime
from processor.stream.envelope import pack
from processor.stream.writes import send


async def handle_inbound(rt: Runtime, message: Any) -> None:
    """One inbound message ends in exactly one place: routed onwards, or a dead letter.

    Routing: an event with two or more identifiers, and every erase command, may change who is
    who, so the identity-links topic (one partition, one writer of the graph) sees it. A
    customer id is always its own person, so an event that carries one needs no look-up: it goes
    straight to its person on customer-events, and if it carries other identifiers too, a `link`
    message with just its identity goes to identity-links for the graph. Only an event with
    several identifiers and no customer id waits for the link agent to name its person. Any
    other single identifier goes to its identity-routes partition, which knows which person it
    belongs to now.
    """
    src = deadletters.source_of(message)
    label = deadletters.label_of(src.topic)
    channel = deadletters.CHANNEL_OF_TOPIC.get(src.topic)
    rt.metrics.child(rt.metrics.messages_consumed, label).inc()
    now = datetime.now(UTC)
    limit = rt.settings.max_event_bytes
    result: Touchpoint | ControlCommand | Rejection
    if channel is None:
        result = decode_control(message.value, now, max_bytes=limit)
    else:
        result = decode_touchpoint(message.value, channel, now, max_bytes=limit)
    if isinstance(result, Rejection):
        await deadletters.send(rt, result, message.value, src, label)
        return
    payload = result.model_dump(mode="json")
    if isinstance(result, ControlCommand):
        kind, named = result.identifier
        node = KIND_PREFIX[kind] + named
        await send(rt.identity_links, node.encode(), pack("control", payload, label, src))
        return
    rt.metrics.child(rt.metrics.events_received, label, result.type.value).inc()
    nodes = nodes_of(result.identity)
    value = pack("event", payload, label, src)
    customer = next((node for node in nodes if is_anchor(node)), None)
    if customer is not None:
        topic, key = rt.customer_events, key_of(customer)
    else:
        topic, key = (rt.identity_links if len(nodes) > 1 else rt.identity_routes), nodes[0]
    # The only message here that can be large: it must fit the internal topic before it goes
    # (a TOUCHPOINT_MAX_EVENT_BYTES above that topic's limit makes it `too_large`).
    writes.check(topic.get_topic_name(), key.encode(), value, "the validated event")
    await send(topic, key.encode(), value)
    if customer is not None and len(nodes) > 1:
        link = {"identity": payload["identity"], "occurred_at": payload["occurred_at"]}
        await send(rt.identity_links, nodes[0].encode(), pack("link", link, label, src))
