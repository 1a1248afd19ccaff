"""The agents: thin adapters from Kafka messages to the pure cores and back."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import orjson

from processor import topics as t
from processor.decode import Rejection, dead_letter, decode_control, decode_touchpoint
from processor.events import Channel, ControlCommand, Touchpoint
from processor.identity.keys import canonical_key
from processor.journey import state as stored
from processor.journey.engine import EventInput, Outcome, erase, fire_due, step
from processor.messages import ErrorKind, to_json
from processor.stream.app import Runtime
from processor.stream.envelope import Source, pack, unpack

log = logging.getLogger(__name__)

CHANNEL_OF_TOPIC = {t.WEB: Channel.web, t.EMAIL: Channel.email, t.STORE: Channel.store}
#: How much of a too-large message a dead letter keeps (the source coordinates hold the rest).
_KEEP_TOO_LARGE = 64 * 1024


def _source_of(message: Any) -> Source:
    ts = message.timestamp
    return Source(
        message.topic,
        message.partition,
        message.offset,
        message.key,
        int(ts * 1000) if ts is not None else None,
    )


async def _send_deadletter(
    rt: Runtime, rejection: Rejection, value: bytes | None, src: Source, label: str
) -> None:
    letter = dead_letter(
        rejection,
        value=value,
        topic=src.topic,
        partition=src.partition,
        offset=src.offset,
        key=src.key,
        timestamp_ms=src.timestamp_ms,
        now=datetime.now(UTC),
        keep_bytes=_KEEP_TOO_LARGE,
    )
    await rt.deadletter.send(key=src.key, value=to_json(letter))
    rt.metrics.deadletters.labels(label, rejection.kind.value).inc()


async def handle_inbound(rt: Runtime, message: Any) -> None:
    """Decode and validate one inbound message; forward it re-keyed, or dead-letter it."""
    src = _source_of(message)
    channel = CHANNEL_OF_TOPIC.get(src.topic)
    label = channel.value if channel is not None else "control"
    rt.metrics.messages_consumed.labels(label).inc()
    now = datetime.now(UTC)
    limit = rt.settings.max_event_bytes
    result: Touchpoint | ControlCommand | Rejection
    if channel is None:
        result = decode_control(message.value, now, max_bytes=limit)
    else:
        result = decode_touchpoint(message.value, channel, now, max_bytes=limit)
    if isinstance(result, Rejection):
        await _send_deadletter(rt, result, message.value, src, label)
        return
    if isinstance(result, ControlCommand):
        key, kind = result.customer_id, "control"
    else:
        key, kind = canonical_key(result.identity), "event"
        rt.metrics.events_received.labels(label, result.type.value).inc()
    payload = result.model_dump(mode="json")
    await rt.customer_events.send(key=key.encode(), value=pack(kind, payload, label, src))


async def _emit(rt: Runtime, key: bytes, out: Outcome) -> None:
    if out.state is None:
        rt.table.pop(key, None)
    else:
        rt.table[key] = stored.encode(out.state)
    m = rt.metrics
    for tr in out.transitions:
        await rt.transitions.send(key=tr.customer_id.encode(), value=to_json(tr))
        m.transitions.labels(tr.from_stage or "none", tr.to_stage).inc()
    for action in out.actions:
        await rt.actions.send(key=action.customer_id.encode(), value=to_json(action))
        m.actions.labels(action.action.value, action.template).inc()
    for rule, reason in out.suppressed:
        m.actions_suppressed.labels(rule, reason).inc()
    if out.cross_channel_conversion:
        m.cross_channel_conversions.inc()


async def handle_customer(rt: Runtime, key_raw: bytes, value: bytes, partition: int) -> None:
    """Apply one re-keyed event or command to the person's journey state and emit the result."""
    key = key_raw.decode()
    kind, label, payload, src = unpack(value)
    try:
        now = datetime.now(UTC)
        state = stored.decode(rt.table.get(key_raw))
        if kind == "control":
            command = ControlCommand.model_validate(payload)
            out = erase(state, key, command.request_id, command.requested_at, rt.journey)
        elif kind == "timer":
            out, fired = fire_due(state, key, now, rt.journey)
            for fire in fired:
                rt.metrics.timers_fired.inc()
                rt.metrics.timer_lateness.observe(max(0.0, (now - fire.due).total_seconds()))
            if not fired:
                rt.timer_index.note(partition, key_raw, state)
                return
        else:
            event = Touchpoint.model_validate(payload)
            out = step(state, EventInput(event, Channel(label), key), now, rt.journey)
            rt.metrics.events_processed.labels(label).inc()
            if out.duplicate:
                rt.metrics.duplicates.labels(label).inc()
                return
        await _emit(rt, key_raw, out)
        rt.timer_index.note(partition, key_raw, out.state)
    except Exception as exc:
        # Faust would ack and commit a message whose handler raised, losing it silently
        # (faust-pitfalls #2). Dead-lettering keeps it, with the reason, for replay after a fix.
        log.exception("processing failed for %s[%s]@%s", src.topic, src.partition, src.offset)
        rt.metrics.processing_errors.labels("journey").inc()
        rejection = Rejection(ErrorKind.internal, f"{type(exc).__name__}: {exc}", ())
        await _send_deadletter(rt, rejection, orjson.dumps(payload), src, label)


def install(rt: Runtime) -> None:
    """Register the agents on the app."""

    @rt.app.agent(rt.inbound, name="ingest")
    async def ingest(stream: Any) -> None:
        async for event in stream.events():
            try:
                await handle_inbound(rt, event.message)
            except Exception as exc:
                message = event.message
                log.exception(
                    "ingest failed for %s[%s]@%s", message.topic, message.partition, message.offset
                )
                rt.metrics.processing_errors.labels("ingest").inc()
                rejection = Rejection(ErrorKind.internal, f"{type(exc).__name__}: {exc}", ())
                src = _source_of(message)
                label = (
                    CHANNEL_OF_TOPIC[src.topic].value
                    if src.topic in CHANNEL_OF_TOPIC
                    else "control"
                )
                await _send_deadletter(rt, rejection, message.value, src, label)

    @rt.app.agent(rt.customer_events, name="journey")
    async def journey(stream: Any) -> None:
        async for event in stream.events():
            await handle_customer(rt, event.key, event.value, event.message.partition)
