"""Rule steps: triggering, waits and follow-ups as timers, cancellation, and emitting actions."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from processor.journey import policies as pol
from processor.journey.conditions import Facts
from processor.journey.definition import EveryLimit, Journey, Step
from processor.journey.outcome import Outcome, TimerFired, Trigger, action_id, coupon_code
from processor.journey.params import ParamContext
from processor.journey.state import CustomerState
from processor.messages import Action, ActionChannel, ActionKind, made

_KIND = {k.value: k for k in ActionKind}
_CHANNEL = {c.value: c for c in ActionChannel}


class Ctx:
    """One step's working set: the (copied) state, the journey, the time and the outcome."""

    __slots__ = ("journey", "now", "now_s", "out", "state")

    def __init__(self, state: CustomerState, journey: Journey, now: datetime, out: Outcome):
        self.state = state
        self.journey = journey
        #: In UTC, as every time in an output is (processor/messages.py `made`): the step
        #: converts its clock once.
        self.now = now
        #: `now` in epoch seconds.
        self.now_s = self.now.timestamp()
        self.out = out

    def consent(self, channel: str) -> bool:
        """Effective marketing consent on `channel`, as the consent policy decides it."""
        return pol.has_consent(self.state, channel, self.journey)

    def facts(self, props: Mapping[str, Any], at: float) -> Facts:
        """Facts for conditions evaluated at epoch seconds `at`."""
        return Facts(self.state, props, at, self.consent)


def _key(ctx: Ctx, step: Step, props: Mapping[str, Any]) -> str | None:
    if step.key is None:
        return None
    if step.key == "cart":
        return None if ctx.state.cart is None else ctx.state.cart.id
    value = props.get(step.key)
    return None if value is None else str(value)


def _limit_key(step: Step, key: str | None) -> str:
    per_key = step.limit == "once_per_key" or (
        isinstance(step.limit, EveryLimit) and step.limit.per_key
    )
    return f"{step.name}|{key}" if per_key else step.name


def _limit_ok(ctx: Ctx, step: Step, key: str | None) -> bool:
    last = ctx.state.fired.get(_limit_key(step, key))
    if last is None or step.limit == "always":
        return True
    if isinstance(step.limit, EveryLimit):
        return ctx.now_s - last >= step.limit.every.total_seconds()
    return False


def _remember_fired(ctx: Ctx, step: Step, key: str | None) -> None:
    fired = ctx.state.fired
    fired[_limit_key(step, key)] = ctx.now_s
    most = ctx.journey.policies.max_keys_per_step
    if len(fired) <= most:
        return  # this step's keys are some of these
    mine = sorted((at, k) for k, at in fired.items() if k.split("|", 1)[0] == step.name)
    for _, k in mine[:-most]:
        del fired[k]  # the oldest keys go first; a forgotten key can fire once more


def emit(ctx: Ctx, step: Step, trig: Trigger) -> bool:
    """Apply limits and policies to one step's action; False when a repeat limit stopped it."""
    if not _limit_ok(ctx, step, trig.key):
        return False
    state, journey, now = ctx.state, ctx.journey, ctx.now
    assert step.action is not None
    assert step.channel is not None
    assert step.template is not None
    if not pol.consent_allows(state, step, journey):
        ctx.out.suppressed.append((step.rule, pol.CONSENT))
        return True
    if ctx.now_s - trig.ready > step.stale_after.total_seconds():
        ctx.out.suppressed.append((step.rule, pol.STALE))
        return True
    send_at = pol.after_quiet_hours(now, state, step, journey)
    capped = pol.is_capped(step, journey)
    if capped and not pol.within_caps(state, send_at, journey):
        ctx.out.suppressed.append((step.rule, pol.CAP))
        return True
    if send_at != now:
        ctx.out.suppressed.append((step.rule, pol.QUIET_HOURS))
    if capped:
        pol.record_send(state, send_at, journey)
    _remember_fired(ctx, step, trig.key)
    code = (
        coupon_code(journey.journey, step.rule, state.customer_id, trig.id)
        if step.params.uses_coupon
        else ""
    )
    params = step.params(ParamContext(state, trig.props, trig.key, code, trig.at))
    ctx.out.actions.append(
        made(
            Action,
            action_id=action_id(journey.journey, step.name, state.customer_id, trig.id),
            customer_id=state.customer_id,
            action=_KIND[step.action],
            channel=_CHANNEL[step.channel],
            template=step.template,
            journey=journey.journey,
            stage=state.stage,
            rule=step.rule,
            trigger_event_id=trig.id,
            created_at=now,
            send_after=send_at,
            params=params,
        )
    )
    return True


def _payload(step: Step, trig: Trigger) -> dict[str, Any]:
    props = {p: trig.props[p] for p in step.params.event_props if p in trig.props}
    return {"trigger": trig.id, "type": trig.type, "at": trig.at, "key": trig.key, "props": props}


def _pending(ctx: Ctx, name: str) -> list[dict[str, Any]]:
    return [p for _, n, p in ctx.state.timers.values() if n == name]


def _arm(ctx: Ctx, name: str, tid: str, due: float, payload: dict[str, Any]) -> None:
    if cancelled_later(ctx.state, (due, name, payload), ctx.journey):
        return
    if len(_pending(ctx, name)) < ctx.journey.policies.max_pending_per_step:
        ctx.state.timers[tid] = (due, name, payload)


def _arm_follow_up(ctx: Ctx, step: Step, trig: Trigger) -> None:
    if step.follow_up is None:
        return
    nxt = ctx.journey.step_by_name[step.follow_up]
    assert nxt.after is not None
    name = f"after:{nxt.name}"
    # The props both steps refer to travel in the payload (not the whole event: bounded).
    wanted = {*step.params.event_props, *nxt.params.event_props}
    payload = _payload(step, trig) | {
        "props": {p: trig.props[p] for p in wanted if p in trig.props}
    }
    _arm(ctx, name, f"{name}:{trig.id}", trig.ready + nxt.after.total_seconds(), payload)


def run(ctx: Ctx, event_type: str | None, entered: list[str], base: Trigger) -> None:
    """Run every step that this event type or these stage entries trigger, in file order.

    Decisions where the journey definition is silent:
    - While a wait of a step is pending for a key (or, without a key, at all), further triggers do
      not re-arm it: the first trigger wins (the cart reminder is due 1 h after the cart opened).
    - A cancelling event cancels the pending waits of its step whose key equals the event's value
      of the key property; an event without that property cancels all of them.
    - A follow-up (`after`) is armed when the previous step passed its conditions and repeat limit,
      emitted or not (its own policies are checked again when it fires), due `after` the moment
      the previous action became due. Its `if` is evaluated when it fires.
    - Repeat limits count emitted actions only (a welcome held back for consent may still go out
      after a later opt-in); `every` is measured between processing times.
    - The action id of a step is action_id(journey, step name, customer, trigger id), where the
      trigger of a follow-up is the first step's trigger, so every step of a chain has its own id.
    """
    facts = None
    for step in ctx.journey.triggered(event_type, entered):
        key = _key(ctx, step, base.props)
        if step.key is not None and key is None:
            continue
        if not step.when.always:
            if facts is None:
                facts = ctx.facts(base.props, base.at)
            if not step.when(facts):
                continue
        trig = (
            base
            if key is None
            else Trigger(base.id, base.type, base.at, base.ready, key, base.props)
        )
        if step.limit in ("once", "once_per_key") and not _limit_ok(ctx, step, key):
            continue
        if step.wait is not None:
            name = f"wait:{step.name}"
            if any(p.get("key") == key for p in _pending(ctx, name)):
                continue  # the first trigger wins
            due = trig.at + step.wait.total_seconds()
            _arm(
                ctx,
                name,
                f"{name}:{key if key is not None else trig.id}",
                due,
                _payload(step, trig),
            )
        elif step.mark is not None:
            ctx.out.cross_channel_conversion = True
        elif emit(ctx, step, trig):
            _arm_follow_up(ctx, step, trig)


def fire(ctx: Ctx, timer: TimerFired) -> None:
    """A wait or follow-up timer came due: emit its step's action (policies permitting)."""
    kind, _, name = timer.name.partition(":")
    step = ctx.journey.step_by_name.get(name)
    if step is None:
        ctx.out.timers_dropped.append(name)  # the journey file no longer has this step
        return
    p = timer.payload
    due = timer.due.timestamp()
    trig = Trigger(str(p["trigger"]), str(p["type"]), float(p["at"]), due, p.get("key"), p["props"])
    if kind == "wait" and step.key == "cart":
        cart = ctx.state.cart
        if cart is None or cart.id != trig.key or not cart.items:
            return  # bought, emptied or replaced meanwhile
    if kind == "after" and not step.when(ctx.facts(trig.props, due)):
        return
    if emit(ctx, step, trig):
        _arm_follow_up(ctx, step, trig)


def cancelled_later(
    seen_by: CustomerState, timer: tuple[float, str, dict[str, Any]], journey: Journey
) -> bool:
    """Did `seen_by` see an event, between this timer's trigger and its due time (in event
    time), that cancels it?

    Events may arrive out of order (several topics and partitions, replays, merged profiles):
    a wait armed by an event is moot when a cancelling event that happened before the wait was
    over was already processed. One that happened after the wait was over cancels nothing.
    """
    step = journey.waits.get(timer[1])
    payload = timer[2]
    at = payload.get("at")
    if step is None or not isinstance(at, int | float):
        return False
    cancel = step.cancel_on  # (event types: a str compares equal to its EventType)
    due = timer[0]
    key = payload.get("key")
    for typ, props, when in seen_by.recent:
        if (
            typ in cancel
            and at < when < due
            and (key is None or step.key is None or props.get(step.key) in (None, key))
        ):
            return True
    return False


def cancel_on(ctx: Ctx, event_type: str, props: Mapping[str, Any]) -> None:
    """Drop pending waits and follow-ups that this event cancels."""
    for tid, (_, name, payload) in list(ctx.state.timers.items()):
        step = ctx.journey.waits.get(name)
        if step is None or event_type not in step.cancel_on:
            continue
        mine, theirs = payload.get("key"), props.get(step.key) if step.key else None
        if mine is not None and theirs is not None and str(theirs) != mine:
            continue  # a review of another order
        del ctx.state.timers[tid]


def cancel_channels(ctx: Ctx, lost: set[str]) -> None:
    """Consent was lost on these channels: drop pending actions that may no longer go out."""
    if not lost:
        return
    for tid, (_, name, _) in list(ctx.state.timers.items()):
        step = ctx.journey.waits.get(name)
        if (
            step is not None
            and step.channel in lost
            and not pol.consent_allows(ctx.state, step, ctx.journey)
        ):
            del ctx.state.timers[tid]
