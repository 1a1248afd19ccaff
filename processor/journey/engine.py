"""The pure journey step: (state, event or fired timer, now, journey) -> Outcome; no I/O."""

from __future__ import annotations

from datetime import datetime

from processor.events import Channel
from processor.journey import rules
from processor.journey.definition import ERASED, Journey, TransitionDef
from processor.journey.memory import CONSENT_EVENTS, PURCHASES, observe
from processor.journey.outcome import EventInput, Outcome, TimerFired, Trigger, action_id
from processor.journey.policies import has_consent
from processor.journey.rules import Ctx
from processor.journey.state import (
    CustomerState,
    as_datetime,
    due_timers,
    first_due,
    in_utc,
)
from processor.messages import Transition, made

__all__ = ["EventInput", "Outcome", "TimerFired", "action_id", "due_timers", "erase", "step"]

#: Channels in the order `channels_before_conversion` lists them.
_CHANNEL_ORDER = tuple(c.value for c in Channel)
#: Stage history entries kept per person (the current stage is always the last).
_MAX_HISTORY = 32


def _move(ctx: Ctx, to: str, at: float, trigger_id: str, trigger_type: str) -> None:
    state, journey = ctx.state, ctx.journey
    channels: list[str] = []
    if trigger_type in PURCHASES:
        since = at - journey.policies.conversion_lookback.total_seconds()
        used = {c for c, t in state.touches if since <= t <= at}
        channels = [c for c in _CHANNEL_ORDER if c in used]
    ctx.out.transitions.append(
        made(
            Transition,
            customer_id=state.customer_id,
            journey=journey.journey,
            from_stage=state.stage or None,
            to_stage=to,
            at=as_datetime(at),
            trigger_event_id=trigger_id,
            trigger_type=trigger_type,
            channels_before_conversion=channels,
            copies_gone_within_days=None,
        )
    )
    state.stage, state.stage_since = to, at
    state.history.append((to, at))
    del state.history[:-_MAX_HISTORY]


def _reconcile_stage_timers(ctx: Ctx) -> None:
    state, timed = ctx.state, ctx.journey.timed_moves
    if not timed:
        return
    wanted: dict[str, str] = {}
    for name, t, after_s in ctx.journey.timed_moves_from.get(state.stage, ()):
        anchor = state.stage_since
        if t.since == "last_purchase" and state.last_purchase is not None:
            anchor = state.last_purchase
        # Milliseconds in the id: one id per anchor, stable across serialisation.
        want = wanted[name] = f"stage:{t.name}@{round(anchor * 1000)}"
        if want not in state.timers:
            state.timers[want] = (anchor + after_s, name, {})
    if len(state.timers) == len(wanted):
        return  # every pending timer is a wanted one: none is stale
    stale = [k for k, (_, n, _) in state.timers.items() if n in timed and wanted.get(n) != k]
    for tid in stale:
        del state.timers[tid]


def _event_transition(
    ctx: Ctx, inp: EventInput, event_type: str, at: float
) -> TransitionDef | None:
    for t in ctx.journey.moves_on_event.get((ctx.state.stage, event_type), ()):
        if t.if_.always or t.if_(ctx.facts(inp.properties, at)):
            return t
    return None


def _observe(state: CustomerState, inp: EventInput, j: Journey) -> set[str]:
    """Learn from the event (`observe`); returns the channels it took consent away on."""
    if inp.type not in CONSENT_EVENTS:
        # Only these events can take a consent away: the others need no before-and-after.
        observe(state, inp, j)
        return set()
    had = {c for c in j.policies.consent.channels if has_consent(state, c, j)}
    was_blocked = state.email_blocked
    observe(state, inp, j)
    lost: set[str] = {c for c in had if not has_consent(state, c, j)}
    if state.email_blocked and not was_blocked:
        lost.add("email")
    return lost


def _on_event(state: CustomerState | None, inp: EventInput, now: datetime, j: Journey) -> Outcome:
    # A StrEnum's str() is its value, at a fraction of the cost of `.value`.
    event_type, at = str(inp.type), inp.at
    out = Outcome(state=None)
    entered: list[str] = []
    if state is None:
        state = CustomerState(customer_id=inp.customer_id, stage=j.initial_stage, stage_since=at)
        ctx = Ctx(state, j, now, out)
        state.stage = ""  # so that the first move reads none → initial stage
        _move(ctx, j.initial_stage, at, inp.event_id, event_type)
        entered.append(j.initial_stage)
    else:
        state = state.copy()
        ctx = Ctx(state, j, now, out)
    out.state = state
    state.seen.append(inp.event_id)
    del state.seen[: -j.policies.dedupe_window_events]
    rules.cancel_channels(ctx, _observe(state, inp, j))
    if event_type in j.cancelling:
        rules.cancel_on(ctx, event_type, inp.properties)
    moved = _event_transition(ctx, inp, event_type, at)
    if moved is not None:
        _move(ctx, moved.to, at, inp.event_id, event_type)
        entered.append(moved.to)
    trig = Trigger(inp.event_id, event_type, at, at, None, inp.properties)
    rules.run(ctx, event_type, entered, trig)
    state.touches.append((str(inp.channel), at))
    del state.touches[: -j.policies.max_touches]
    _reconcile_stage_timers(ctx)
    return out


def _on_timer(state: CustomerState | None, timer: TimerFired, now: datetime, j: Journey) -> Outcome:
    pending = None if state is None else state.timers.get(timer.timer_id)
    # Cancelled, replaced, already fired or early: the shell's copy is stale; nothing happens.
    # Compared as datetimes: a due time in epoch seconds need not survive the trip through a
    # datetime (microseconds) unchanged, and a float mismatch would make it never fire.
    if state is None or pending is None or as_datetime(pending[0]) != timer.due:
        return Outcome(state=state)
    due = pending[0]
    if now.timestamp() < due:
        return Outcome(state=state)
    state = state.copy()
    out = Outcome(state=state)
    ctx = Ctx(state, j, now, out)
    del state.timers[timer.timer_id]
    if timer.name.startswith("transition:"):
        t = j.timed_moves.get(timer.name)
        if t is None:
            # The journey file no longer has this transition.
            out.timers_dropped.append(timer.name.partition(":")[2])
        elif state.stage in t.from_ and t.if_(ctx.facts({}, due)):
            _move(ctx, t.to, due, timer.timer_id, "timer")
            trig = Trigger(timer.timer_id, "timer", due, due)
            rules.run(ctx, None, [t.to], trig)
    else:
        rules.fire(ctx, timer)
    _reconcile_stage_timers(ctx)
    return out


def _has_due(state: CustomerState | None, until_s: float) -> bool:
    """Has the person a timer due by epoch seconds `until_s`? (Whether `fire_due` fires
    anything: most events find nothing due before them, and need no firing outcome.)"""
    first = first_due(state)
    return first is not None and first <= until_s


def step(
    state: CustomerState | None,
    input: EventInput | TimerFired,
    now: datetime,
    journey: Journey,
) -> Outcome:
    """Apply one event or fired timer to a person's state; never changes `state` in place.

    Decisions where the journey definition is silent:
    - A person's first event makes them enter the initial stage, and may move them on at once
      (a first `product_view` gives none→awareness and awareness→consideration).
    - At most one event-driven move per event: the first matching transition in file order.
    - Time-driven moves (`after`) are timers kept in the state: armed when the person is in one of
      the `from` stages, anchored at the stage entry or the last purchase, replaced when the anchor
      moves (the id names the anchor, so every lapse has its own trigger id), dropped when the
      person leaves those stages. Their transitions carry trigger_type `timer` and the timer id.
    - An event is applied after every timer of the person that was due when it happened (and
      is due by `now`): a person's moves follow the order of their events and due times, not
      when the worker's clock got round to a timer.
    - Stage moves are never stale; only actions are.
    - `channels_before_conversion` lists the channels of the person's touchpoints within the
      conversion look-back before the purchase (the purchase itself excluded), in channel order.
    """
    now = in_utc(now)  # once for the whole step: the rules read it as epoch seconds too
    if isinstance(input, TimerFired):
        return _on_timer(state, input, now, journey)
    if state is not None and input.event_id in state.seen:
        return Outcome(state=state, duplicate=True)
    if not _has_due(state, min(input.at, now.timestamp())):
        return _on_event(state, input, now, journey)
    # What was due before the event happened comes first, whenever the clock fired it.
    before = fire_due(state, input.customer_id, now, journey, until=input.occurred_at)
    after = _on_event(before.state, input, now, journey)
    return before.then(after) if before.fired else after


def erase(
    state: CustomerState | None,
    customer_id: str,
    request_id: str,
    requested_at: datetime,
    journey: Journey,
    gone_within_days: int | None = None,
) -> Outcome:
    """Forget a person: no state is left, every timer is cancelled; `erased` is the receipt,
    saying within how many days every copy in Kafka is gone (`gone_within_days`)."""
    receipt = Transition(
        customer_id=customer_id,
        journey=journey.journey,
        from_stage=state.stage if state is not None else None,
        to_stage=ERASED,
        at=requested_at,
        trigger_event_id=request_id,
        trigger_type="erase_customer",
        copies_gone_within_days=gone_within_days,
    )
    return Outcome(state=None, transitions=[receipt])


def fire_due(
    state: CustomerState | None,
    customer_id: str,
    now: datetime,
    journey: Journey,
    *,
    until: datetime | None = None,
) -> Outcome:
    """Fire every timer of the person that is due by `until` (default `now`), earliest first,
    as one outcome; `fired` lists the firings (for lateness metrics).

    The streaming shell calls this when the clock says a person has timers due, and `step` when
    an event comes after them; timers that a firing sets and that are already due fire in the
    same call. No firing at all leaves the state as it was.
    """
    total = Outcome(state=state)
    limit = now if until is None else min(until, now)
    if not _has_due(state, limit.timestamp()):
        return total
    # Each firing removes its timer; a firing may set new ones. Bounded in case a journey file
    # sets a timer that is due at once from its own firing.
    for _ in range(64):
        due = due_timers(total.state, limit)
        if not due:
            break
        fire = TimerFired.of(customer_id, due[0])
        out = step(total.state, fire, now, journey)
        if out.state is total.state:
            break  # nothing fired: never spin on a timer that does not go away
        out.fired.append(fire)
        total = total.then(out)
        if total.state is None:
            break
    return total
