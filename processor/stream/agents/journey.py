"""The journey agent's work: one re-keyed message applied to one person's state."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import orjson

from processor import logs
from processor import topics as t
from processor.events import Channel, ControlCommand
from processor.journey import state as stored
from processor.journey.engine import EventInput, Outcome, erase, fire_due, step
from processor.journey.merge import absorb
from processor.journey.state import CustomerState
from processor.messages import output_json
from processor.stream import observe
from processor.stream.agents import deadletters, fences, held
from processor.stream.agents.envelope import Kind, Source, pack, unpack
from processor.stream.app import Runtime
from processor.stream.commit.checkpoint import Checkpoint, OutputTooLarge
from processor.stream.commit.writes import Partition

log = logging.getLogger(__name__)
#: Identity messages made here have no inbound coordinates.
_NOWHERE = Source("identity", -1, -1, None, None)

#: The channel of each inbound topic's label.
_CHANNEL = {c.value: c for c in Channel}


def _emit(
    rt: Runtime, cp: Checkpoint, table: Partition, key: bytes, partition: int, out: Outcome,
    now: datetime,
) -> None:  # fmt: skip
    """Keep the outcome's state and send what it emits. Every record is made and checked
    against its topic's limit first (Checkpoint.check): one that does not fit raises before
    anything is kept, so the input is dead-lettered whole instead of half applied."""
    state = None if out.state is None else stored.encode(out.state)
    cp.check(t.JOURNEY_CHANGELOG, key, state, "the person's state")
    transitions = [(tr, tr.customer_id.encode(), output_json(tr)) for tr in out.transitions]
    actions = [(a, a.customer_id.encode(), output_json(a)) for a in out.actions]
    for _, k, v in transitions:
        cp.check(t.TRANSITIONS, k, v, "a transition")
    for a, k, v in actions:
        cp.check(t.ACTIONS, k, v, f"the {a.template} action")
    if state is None:
        table.pop(key)
    else:
        table[key] = state
        assert out.state is not None
        rt.decoded.keep(key, state, out.state)
    rt.timer_index.note(partition, key, out.state)
    m = rt.metrics
    for fire in out.fired:
        cp.count(m.timers_fired)
        m.timer_lateness.observe(max(0.0, (now - fire.due).total_seconds()))
    for tr, k, v in transitions:
        cp.send(t.TRANSITIONS, k, v)
        cp.count(m.transitions, tr.from_stage or "none", tr.to_stage)
    for a, k, v in actions:
        cp.send(t.ACTIONS, k, v)
        cp.count(m.actions, a.action.value, a.template)
    for rule, reason in out.suppressed:
        cp.count(m.actions_suppressed, rule, reason)
    for rule in out.timers_dropped:
        cp.count(m.timers_dropped, rule)
    if out.cross_channel_conversion:
        cp.count(m.cross_channel_conversions)


def _merge(
    cp: Checkpoint, table: Partition, key_raw: bytes, holds: CustomerState | str | None,
    payload: dict[str, Any],
) -> None:  # fmt: skip
    """Hand this key's person over to `payload["into"]`, and leave a marker that points there."""
    into = str(payload["into"])
    if into == key_raw.decode():
        return
    if isinstance(holds, CustomerState):
        body = {"into": into, "at": payload.get("at"), "state": holds.to_dict()}
        cp.send(t.CUSTOMER_EVENTS, into.encode(), pack(Kind.absorb, body, "identity", _NOWHERE))
    table[key_raw] = held.moved(into)


def _requested(payload: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(str(payload["requested_at"]))


def _last_seen(state: CustomerState) -> datetime:
    """When a handed-over profile was last active: its newest touchpoint or stage move."""
    return datetime.fromtimestamp(max([state.stage_since, *(t for _, t in state.touches)]), UTC)


def _processed(
    rt: Runtime, cp: Checkpoint, label: str, event: EventInput, now: datetime
) -> None:  # fmt: skip
    cp.count(rt.metrics.events_processed, label)
    observe.event_processed(rt, label, event.occurred_at, now)


def handle_customer(
    rt: Runtime, cp: Checkpoint, key_raw: bytes, value: bytes, partition: int
) -> None:
    """Apply one event, timer, command or identity message to the person at `key_raw`."""
    key = key_raw.decode()
    kind, label, payload, src = unpack(value)
    table = rt.journey_writes.at(partition)
    try:
        now = datetime.now(UTC)
        other = CustomerState.from_dict(payload["state"]) if kind == Kind.absorb else None
        event: EventInput | None = None
        if rt.fences.live(partition, now) and kind in (Kind.event, Kind.absorb):
            # A message about a person erased after it happened (stream/agents/fences.py)?
            occurred = (
                _last_seen(other)
                if other is not None
                else datetime.fromisoformat(str(payload["occurred_at"]))
            )
            if rt.fences.blocks(partition, (key,), occurred):
                fences.count_dropped(rt.metrics, "journey", label)
                return
        holds = rt.decoded.held_at(key_raw, table.get(key_raw))
        if isinstance(holds, str) and kind in (Kind.event, Kind.absorb, Kind.control):
            # This key's person now lives at `holds`: follow them (a late or replayed message).
            cp.send(t.CUSTOMER_EVENTS, holds.encode(), value)
            return
        state = holds if isinstance(holds, CustomerState) else None
        if kind == Kind.merge:
            _merge(cp, table, key_raw, holds, payload)
            observe.settled(rt, partition, state, table.get(key_raw))
            return
        if kind == Kind.purge:
            rt.fences.add(partition, (key,), _requested(payload), now)
            table.pop(key_raw)
            rt.timer_index.note(partition, key_raw, None)
            observe.settled(rt, partition, state, None)
            return
        if other is not None:
            # When the event that linked the two profiles happened (older messages: now).
            linked = datetime.fromisoformat(payload["at"]) if payload.get("at") else now
            out = absorb(state, other, key, linked, rt.journey)
            rt.metrics.identity_merges.inc()
        elif kind == Kind.control:
            command = ControlCommand.model_validate(payload)
            rt.fences.add(partition, (key,), command.requested_at, now)
            out = erase(
                state, key, command.request_id, command.requested_at, rt.journey, rt.erasure_days
            )
        elif kind == Kind.timer:
            out = fire_due(state, key, now, rt.journey)
            if not out.fired:
                rt.timer_index.note(partition, key_raw, state)
                return
        else:
            event = EventInput.checked(payload, _CHANNEL[label], key)  # validated at ingest
            out = step(state, event, now, rt.journey)
            if out.duplicate:
                _processed(rt, cp, label, event, now)
                cp.count(rt.metrics.duplicates, label)
                return
        _emit(rt, cp, table, key_raw, partition, out, now)
        if event is not None:
            _processed(rt, cp, label, event, now)
        observe.emitted(rt, partition, state, out, src)
    except OutputTooLarge as exc:
        # What this message makes would not fit its topic: nothing of it was kept (_emit).
        deadletters.send(rt, cp, deadletters.too_large(exc), orjson.dumps(payload), src, label)
    except Exception as exc:
        # Faust would ack and commit a message whose handler raised, losing it silently
        # (faust-pitfalls #2). Dead-lettering keeps it, with the reason, for replay after a fix.
        log.exception(
            "processing failed for %s[%s]@%s", src.topic, src.partition, src.offset,
            extra=logs.record_fields(src.topic, src.partition, src.offset),
        )  # fmt: skip
        rt.metrics.processing_errors.labels("journey").inc()
        deadletters.send(rt, cp, deadletters.internal(exc), orjson.dumps(payload), src, label)
