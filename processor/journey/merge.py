"""Folding two profiles of one person into one state, when identity resolution links them."""

from __future__ import annotations

from datetime import datetime

from processor.journey.definition import Journey
from processor.journey.memory import keep_campaigns
from processor.journey.outcome import Outcome
from processor.journey.rules import cancelled_later
from processor.journey.state import Cart, CustomerState
from processor.messages import Transition

#: trigger_type of the transition that records a merge.
MERGE = "identity_merge"


def _rank(stage: str, journey: Journey) -> int:
    order = journey.policies.merge_order
    return order.index(stage) if stage in order else -1


def _newest(items: list[tuple[str, float]], bound: int) -> list[tuple[str, float]]:
    return sorted(set(items), key=lambda x: (x[1], x[0]))[-bound:]


def _cart(a: Cart | None, b: Cart | None) -> Cart | None:
    if a is None or b is None:
        return a or b
    first, second = sorted((a, b), key=lambda c: c.id)
    items = dict(first.items)
    for product, subtotal in second.items.items():
        items[product] = max(items.get(product, 0.0), subtotal)
    return Cart(first.id, items, first.currency or second.currency)


def fold(a: CustomerState, b: CustomerState, customer_id: str, journey: Journey) -> CustomerState:
    """One state with everything both knew; the same whichever is `a` and which is `b`.

    Furthest stage (by `policies.merge_order`), counters and lifetime value added, carts and
    recent touchpoints united, consent from the most recent explicit statement per channel,
    pending timers united (one id is one timer, so a moved timer still fires once), seen event
    ids, repeat limits and capped sends kept.
    """
    p = journey.policies
    lead, other = sorted(
        (a, b), key=lambda s: (_rank(s.stage, journey), s.stage_since, s.customer_id)
    )[::-1]
    out = lead.copy()
    out.customer_id = customer_id
    out.history = _newest(a.history + b.history, 64)
    out.seen = list(dict.fromkeys(other.seen + lead.seen))[-p.dedupe_window_events :]
    # New dicts: a copy shares these with the state it was made of (`copy`).
    out.consent, out.consent_at = dict(lead.consent), dict(lead.consent_at)
    for channel in set(a.consent) | set(b.consent):
        stated = [s for s in (a, b) if channel in s.consent]
        latest = max(stated, key=lambda s: (s.consent_at.get(channel, 0.0), s.consent[channel]))
        out.consent[channel] = latest.consent[channel]
        out.consent_at[channel] = latest.consent_at.get(channel, 0.0)
    # A block stands unless a newer explicit opt-in (in either profile) lifted it.
    out.email_blocked = any(
        s.email_blocked and s.consent_at.get("email", 0.0) >= out.consent_at.get("email", 0.0)
        for s in (a, b)
    )
    out.timezone = lead.timezone or other.timezone
    out.fired = {k: max(a.fired.get(k, 0.0), b.fired.get(k, 0.0)) for k in {*a.fired, *b.fired}}
    out.touches = _newest(a.touches + b.touches, p.max_touches)
    out.purchases = a.purchases + b.purchases
    out.lifetime_value = a.lifetime_value + b.lifetime_value
    purchases = [t for t in (a.last_purchase, b.last_purchase) if t is not None]
    out.last_purchase = max(purchases) if purchases else None
    out.cart = _cart(a.cart, b.cart)
    out.recent = sorted(a.recent + b.recent, key=lambda r: (r[2], r[0], sorted(r[1].items())))[
        -p.max_recent_events :
    ]
    keep_campaigns(out, a.campaigns, b.campaigns)
    out.sent = sorted(a.sent + b.sent)
    # Stage timers (`stage:` ids) belong to the stage the person is in: keep the lead's.
    out.timers = {k: v for k, v in other.timers.items() if not k.startswith("stage:")}
    out.timers.update(lead.timers)
    # A wait armed in one profile is cancelled by what the other saw after its trigger (the
    # in-store purchase of a product viewed online): the merged person must not get it.
    out.timers = {
        tid: timer
        for tid, timer in out.timers.items()
        if not any(cancelled_later(s, timer, journey) for s in (a, b) if tid not in s.timers)
    }
    out.identifiers = list(dict.fromkeys(lead.identifiers + other.identifiers))[-32:]
    return out


def absorb(
    state: CustomerState | None, other: CustomerState, customer_id: str, at: datetime,
    journey: Journey,
) -> Outcome:  # fmt: skip
    """Fold the profile `other` (known until now under another key) into `customer_id`'s.

    One transition records the merge, from the person's stage before to the merged stage, `at`
    the time of the event that linked the two profiles.
    """
    if other.customer_id == customer_id:
        return Outcome(state=state)
    before = state.stage if state is not None else None
    merged = fold(state, other, customer_id, journey) if state else _relabel(other, customer_id)
    record = Transition(
        customer_id=customer_id,
        journey=journey.journey,
        from_stage=before,
        to_stage=merged.stage,
        at=at,
        trigger_event_id=f"merge:{other.customer_id}",
        trigger_type=MERGE,
    )
    return Outcome(state=merged, transitions=[record])


def _relabel(state: CustomerState, customer_id: str) -> CustomerState:
    out = state.copy()
    out.customer_id = customer_id
    return out
