"""The pure journey step: (state, event, now, journey) → outcome. No Kafka, clock or I/O."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime

from processor.events import Channel, EventType, Touchpoint
from processor.journey.definition import ERASED, Journey, RuleDef
from processor.journey.state import CustomerState
from processor.messages import Action, ActionChannel, ActionKind, Transition

_PURCHASES = frozenset({EventType.order_placed, EventType.pos_purchase})
_MARKETING_CHANNELS = frozenset({"email", "sms", "push"})
#: Channels in the order `channels_before_conversion` lists them.
_CHANNEL_ORDER = tuple(c.value for c in Channel)
#: Touches remembered per person for conversion paths; older ones fall out first.
_MAX_TOUCHES = 64


@dataclass(slots=True)
class Outcome:
    """What one step decided: the new state (None deletes it) and what to emit."""

    state: CustomerState | None
    transitions: list[Transition] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)
    #: (rule, reason) of every action a policy held back; counted, never emitted.
    suppressed: list[tuple[str, str]] = field(default_factory=list)
    duplicate: bool = False


def action_id(journey: str, rule: str, customer_id: str, trigger_event_id: str) -> str:
    """Deterministic: the same rule, customer and trigger always give the same id."""
    digest = hashlib.blake2b(
        f"{journey}\x1f{rule}\x1f{customer_id}\x1f{trigger_event_id}".encode(), digest_size=16
    )
    return digest.hexdigest()


def _epoch(at: datetime) -> float:
    return at.timestamp()


def _apply_consent(state: CustomerState, event: Touchpoint) -> None:
    props = event.properties
    if event.type in (EventType.signup, EventType.consent_updated):
        consent = props.get("consent") or {}
        for channel in _MARKETING_CHANNELS:
            value = consent.get(channel)
            if isinstance(value, bool):
                state.consent[channel] = value
    elif event.type is EventType.newsletter_subscribe:
        state.consent["email"] = True
    elif event.type in (EventType.email_unsubscribed, EventType.email_complained) or (
        event.type is EventType.email_bounced and props.get("bounce_type") == "hard"
    ):
        state.consent["email"] = False


def _move(state: CustomerState, to: str, event: Touchpoint, journey: Journey, out: Outcome) -> None:
    at = _epoch(event.occurred_at)
    channels: list[str] = []
    if event.type in _PURCHASES:
        since = at - journey.policies.conversion_lookback.total_seconds()
        used = {c for c, t in state.touches if since <= t <= at}
        channels = [c for c in _CHANNEL_ORDER if c in used]
    out.transitions.append(
        Transition(
            customer_id=state.customer_id,
            journey=journey.journey,
            from_stage=state.stage,
            to_stage=to,
            at=event.occurred_at,
            trigger_event_id=event.event_id,
            trigger_type=event.type.value,
            channels_before_conversion=channels,
        )
    )
    state.stage, state.stage_since = to, at
    state.history.append((to, at))


def _fire(
    state: CustomerState,
    rule: RuleDef,
    event: Touchpoint,
    now: datetime,
    journey: Journey,
    out: Outcome,
) -> None:
    if rule.limit == "once" and rule.name in state.fired:
        return
    marketing = rule.template not in journey.policies.transactional_templates
    if marketing and rule.channel in _MARKETING_CHANNELS and not state.consent.get(rule.channel):
        out.suppressed.append((rule.name, "consent"))
        return
    state.fired[rule.name] = _epoch(now)
    out.actions.append(
        Action(
            action_id=action_id(journey.journey, rule.name, state.customer_id, event.event_id),
            customer_id=state.customer_id,
            action=ActionKind(rule.action),
            channel=ActionChannel(rule.channel),
            template=rule.template,
            journey=journey.journey,
            stage=state.stage,
            rule=rule.name,
            trigger_event_id=event.event_id,
            created_at=now,
            send_after=now,
            params={},
        )
    )


def step(
    state: CustomerState | None,
    event: Touchpoint,
    channel: Channel,
    customer_id: str,
    now: datetime,
    journey: Journey,
) -> Outcome:
    """Apply one touchpoint of `customer_id` (seen on `channel`) to their journey state."""
    if state is not None and event.event_id in state.seen:
        return Outcome(state=state, duplicate=True)
    out = Outcome(state=None)
    at = _epoch(event.occurred_at)
    if state is None:
        state = CustomerState(customer_id=customer_id, stage=journey.initial_stage, stage_since=at)
        state.history.append((journey.initial_stage, at))
        out.transitions.append(
            Transition(
                customer_id=customer_id,
                journey=journey.journey,
                from_stage=None,
                to_stage=journey.initial_stage,
                at=event.occurred_at,
                trigger_event_id=event.event_id,
                trigger_type=event.type.value,
            )
        )
    out.state = state
    state.seen.append(event.event_id)
    del state.seen[: -journey.policies.dedupe_window_events]
    _apply_consent(state, event)
    for transition in journey.transitions:
        if state.stage in transition.from_ and event.type in transition.on:
            _move(state, transition.to, event, journey, out)
            break
    if event.type in _PURCHASES:
        state.purchases += 1
    for rule in journey.rules:
        if event.type in rule.on:
            _fire(state, rule, event, now, journey, out)
    state.touches.append((channel.value, at))
    del state.touches[:-_MAX_TOUCHES]
    return out


def erase(
    state: CustomerState | None,
    customer_id: str,
    request_id: str,
    requested_at: datetime,
    journey: Journey,
) -> Outcome:
    """Forget a person: no state is left; the `erased` transition is the receipt."""
    receipt = Transition(
        customer_id=customer_id,
        journey=journey.journey,
        from_stage=state.stage if state is not None else None,
        to_stage=ERASED,
        at=requested_at,
        trigger_event_id=request_id,
        trigger_type="erase_customer",
    )
    return Outcome(state=None, transitions=[receipt])
