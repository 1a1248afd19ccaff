"""Property tests of the engine over random event sequences of one person (hypothesis)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processor.journey.engine import Outcome
from processor.journey.simulate import Simulation
from processor.journey.state import encode
from processor.messages import Action
from tests.unit.journey.support import LIFECYCLE, channel_of, touchpoint

START = datetime(2026, 3, 20, 6, 0, tzinfo=UTC)  # a week before the spring-forward night
MARKETING = ("email", "sms", "push")
# Small pools, so that carts, categories, campaigns and event ids repeat.
_PRODUCTS = st.sampled_from(["P-1", "P-2", "P-3"])
_CATEGORIES = st.sampled_from(["mugs", "cups"])
_CAMPAIGNS = st.sampled_from(["c1", "c2", "c3"])
_ORDERS = st.sampled_from(["O-1", "O-2", "O-3", "O-4"])


def _event_props(typ: str) -> st.SearchStrategy[dict[str, Any]]:
    table: dict[str, st.SearchStrategy[dict[str, Any]]] = {
        "product_view": st.fixed_dictionaries({"product_id": _PRODUCTS, "category": _CATEGORIES}),
        "cart_add": st.fixed_dictionaries(
            {"product_id": _PRODUCTS, "price": st.sampled_from([5.0, 12.5])}
        ),
        "cart_remove": st.fixed_dictionaries({"product_id": _PRODUCTS}),
        "order_placed": st.fixed_dictionaries(
            {"order_id": _ORDERS, "value": st.sampled_from([10.0, 300.0])}
        ),
        "pos_purchase": st.fixed_dictionaries(
            {"store_id": st.just("S-1"), "order_id": _ORDERS, "value": st.just(40.0)}
        ),
        "signup": st.fixed_dictionaries(
            {"consent": st.fixed_dictionaries({"email": st.booleans()})}
        ),
        "consent_updated": st.fixed_dictionaries(
            {"consent": st.fixed_dictionaries({"email": st.booleans()})}
        ),
        "survey_response": st.fixed_dictionaries({"nps": st.integers(0, 10)}),
        "review_submitted": st.fixed_dictionaries(
            {"rating": st.integers(1, 5), "order_id": _ORDERS}
        ),
        "email_delivered": st.fixed_dictionaries({"campaign_id": _CAMPAIGNS}),
        "email_opened": st.fixed_dictionaries({"campaign_id": _CAMPAIGNS}),
        "email_bounced": st.fixed_dictionaries({"bounce_type": st.sampled_from(["hard", "soft"])}),
        "store_visit": st.just({"store_id": "S-1"}),
        "product_return": st.fixed_dictionaries({"order_id": _ORDERS, "value": st.just(10.0)}),
    }
    return table.get(typ, st.just({}))


_TYPES = [
    "page_view", "product_view", "search", "cart_add", "cart_remove", "order_placed",
    "pos_purchase", "signup", "newsletter_subscribe", "consent_updated", "survey_response",
    "review_submitted", "email_delivered", "email_opened", "email_bounced",
    "email_unsubscribed", "email_complained", "store_visit", "product_return",
]  # fmt: skip


@dataclass(frozen=True)
class Op:
    """One step of a random sequence: an event, a time jump, or an erasure, after `gap_s`."""

    gap_s: int
    kind: str
    typ: str = ""
    eid: str = ""
    props: tuple[tuple[str, Any], ...] = ()


@st.composite
def _op(draw: st.DrawFn) -> Op:
    # Gaps from a minute to six weeks, so that waits, follow-ups and lapses all come due.
    gap = draw(st.sampled_from([60, 1800, 3 * 3600, 86400, 4 * 86400, 20 * 86400, 45 * 86400]))
    kind = draw(st.sampled_from(["event"] * 12 + ["advance", "erase"]))
    if kind != "event":
        return Op(gap, kind, eid=f"r{draw(st.integers(0, 9))}")
    typ = draw(st.sampled_from(_TYPES))
    props = draw(_event_props(typ))
    return Op(gap, "event", typ, f"e{draw(st.integers(0, 40))}", tuple(props.items()))


SEQUENCES = st.tuples(
    st.lists(_op(), min_size=1, max_size=25), st.sampled_from([None, "Asia/Tokyo"])
)


def _run(
    ops: list[Op], tz: str | None, *, roundtrip: bool = False
) -> Iterator[tuple[Op, Simulation, list[Outcome]]]:
    """Play `ops`, yielding each op with the outcomes it produced (timers first)."""
    sim = Simulation(LIFECYCLE, "C-1", START, roundtrip=roundtrip)
    at = START
    for op in ops:
        at += timedelta(seconds=op.gap_s)
        before = len(sim.outcomes)
        if op.kind == "advance":
            sim.advance_to(at)
        elif op.kind == "erase":
            sim.erase(op.eid, at)
        else:
            event = touchpoint(op.eid, op.typ, at, tz=tz, **dict(op.props))
            sim.event(event, channel_of(op.typ), at)
        yield op, sim, sim.outcomes[before:]


def _trace(sim: Simulation) -> tuple[Any, ...]:
    return (
        [t.model_dump() for t in sim.transitions],
        [a.model_dump() for a in sim.actions],
        sorted(sim.suppressed.items()),
        sim.duplicates,
        sim.cross_channel_conversions,
        None if sim.state is None else encode(sim.state),
    )


def _is_marketing(a: Action) -> bool:
    return (
        a.channel.value in MARKETING
        and a.template not in LIFECYCLE.policies.transactional_templates
    )


FAST = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(SEQUENCES)
def test_no_marketing_without_consent_and_nothing_to_a_blocked_address(
    seq: tuple[list[Op], str | None],
) -> None:
    ops, tz = seq
    consent: bool = False
    blocked = False
    seen: set[str] = set()
    for op, _, outcomes in _run(ops, tz):
        # Actions of timers that fired before this op are judged by consent as it was then.
        mine = outcomes[-1:] if op.kind == "event" else []
        for out in outcomes[: len(outcomes) - len(mine)]:
            for a in out.actions:
                assert not (a.channel.value == "email" and blocked), a
                assert not _is_marketing(a) or consent, a
        if op.kind == "erase":
            consent, blocked, seen = False, False, set()
        elif op.kind == "event" and op.eid not in seen:
            seen.add(op.eid)
            p = dict(op.props)
            if op.typ in ("signup", "consent_updated"):
                consent = bool(p["consent"]["email"])
                # A newer explicit opt-in lifts a complaint's or a hard bounce's block.
                blocked = blocked and not consent
            elif op.typ == "newsletter_subscribe":
                consent, blocked = True, False
            elif op.typ in ("email_unsubscribed", "email_complained") or (
                op.typ == "email_bounced" and p["bounce_type"] == "hard"
            ):
                consent = False
                blocked = blocked or op.typ != "email_unsubscribed"
        for a in (a for out in mine for a in out.actions):
            assert not (a.channel.value == "email" and blocked), a
            assert not _is_marketing(a) or (consent and not blocked), a


@FAST
@given(SEQUENCES)
def test_caps_hold_in_every_7_days_and_every_local_day(seq: tuple[list[Op], str | None]) -> None:
    ops, tz = seq
    sends: list[datetime] = []
    for op, _, outcomes in _run(ops, tz):
        if op.kind == "erase":
            sends = []  # a new person after erasure: caps start afresh
        sends += [a.send_after for o in outcomes for a in o.actions if _is_marketing(a)]
    zone = ZoneInfo(tz or LIFECYCLE.policies.timezone)
    sends.sort()
    for s in sends:
        assert sum(1 for x in sends if s <= x < s + timedelta(days=7)) <= 3
        day = s.astimezone(zone).date()
        assert sum(1 for x in sends if x.astimezone(zone).date() == day) <= 2


ALLOWED = {(f, t.to) for t in LIFECYCLE.transitions for f in t.from_} | {
    (None, LIFECYCLE.initial_stage)
}


@FAST
@given(SEQUENCES)
def test_stages_move_only_along_declared_transitions(seq: tuple[list[Op], str | None]) -> None:
    ops, tz = seq
    stage: str | None = None
    for _, _, outcomes in _run(ops, tz):
        for t in (t for o in outcomes for t in o.transitions):
            assert t.from_stage == stage
            assert t.to_stage == "erased" or (t.from_stage, t.to_stage) in ALLOWED, t
            stage = None if t.to_stage == "erased" else t.to_stage


@FAST
@given(SEQUENCES, st.data())
def test_replaying_an_event_changes_nothing(
    seq: tuple[list[Op], str | None], data: st.DataObject
) -> None:
    ops, tz = seq
    events = [i for i, op in enumerate(ops) if op.kind == "event"]
    if not events:
        return
    i = data.draw(st.sampled_from(events))
    j = data.draw(st.integers(i + 1, len(ops)))
    again = Op(0, "event", ops[i].typ, ops[i].eid, ops[i].props)
    if any(op.kind == "erase" for op in ops[i:j]):
        return  # after an erasure the id belongs to a new person: not a replay
    *_, (_, plain, _) = _run(ops, tz)
    *_, (_, replayed, _) = _run([*ops[:j], again, *ops[j:]], tz)
    want = _trace(plain)
    got = _trace(replayed)
    assert got[:3] == want[:3]
    assert got[3] == want[3] + 1
    assert got[4:] == want[4:]


@FAST
@given(SEQUENCES)
def test_outcome_does_not_depend_on_storing_the_state_between_steps(
    seq: tuple[list[Op], str | None],
) -> None:
    ops, tz = seq
    *_, (_, kept, _) = _run(ops, tz)
    *_, (_, stored, _) = _run(ops, tz, roundtrip=True)
    assert _trace(stored) == _trace(kept)
    # Same inputs, same outcome, same action ids: a second run is identical.
    *_, (_, again, _) = _run(ops, tz)
    assert _trace(again) == _trace(kept)


def _within_caps_by_definition(sent: list[float], at: datetime, tz: ZoneInfo) -> bool:
    """The caps as the journey states them, counted send by send (slow and plain)."""
    caps = LIFECYCLE.policies.frequency_caps
    assert caps is not None
    t, span = at.timestamp(), caps.rolling.within.total_seconds()
    for start in [s for s in sent if t - span < s <= t] + [t]:
        if sum(1 for s in sent if start <= s < start + span) + 1 > caps.rolling.max:
            return False
    day = at.astimezone(tz).date()
    return sum(1 for s in sent if datetime.fromtimestamp(s, tz).date() == day) + 1 <= (
        caps.per_local_day
    )


# Zones whose daylight-saving change skips or repeats midnight, and ordinary ones.
_CAP_ZONES = ["Europe/Berlin", "America/Santiago", "America/Havana", "Asia/Beirut", "UTC"]
_WEEK = 7 * 86400
#: Offsets from the new message that sit on the edges of a rolling window, and others.
_EDGES = [-_WEEK - 1800, -_WEEK, -_WEEK + 1800, -86400, -1800, 0, 1800, _WEEK - 1800, _WEEK]


@settings(max_examples=500, deadline=None)
@given(
    sends=st.lists(
        st.sampled_from(_EDGES) | st.integers(-10 * 48, 10 * 48).map(lambda n: n * 1800),
        max_size=6,
    ),
    at=st.integers(-3 * 48, 3 * 48).map(lambda n: n * 1800),
    zone=st.sampled_from(_CAP_ZONES),
    base=st.sampled_from(["2026-03-28T12:00:00Z", "2026-09-05T12:00:00Z", "2026-10-24T12:00:00Z",
                          "2026-04-04T12:00:00Z"]),
)  # fmt: skip
def test_caps_count_what_the_journey_states(
    sends: list[int], at: int, zone: str, base: str
) -> None:
    from processor.journey import policies
    from processor.journey.state import CustomerState

    t = datetime.fromisoformat(base).timestamp() + at
    state = CustomerState(customer_id="C-1", stage="purchase", stage_since=0.0, timezone=zone)
    state.sent = sorted(t + s for s in sends)
    when = datetime.fromtimestamp(t, UTC)
    expected = _within_caps_by_definition(state.sent, when, ZoneInfo(zone))
    assert policies.within_caps(state, when, LIFECYCLE) is expected


@settings(max_examples=500, deadline=None)
@given(
    at=st.integers(-400 * 48, 400 * 48).map(lambda n: n * 1800),
    near=st.integers(-2 * 48, 2 * 48).map(lambda n: n * 1800) | st.integers(-86400, 86400),
    zone=st.sampled_from(_CAP_ZONES),
)
def test_a_local_day_is_the_instants_whose_local_date_it_is(at: int, near: int, zone: str) -> None:
    from processor.journey.policies import local_day

    tz = ZoneInfo(zone)
    t = datetime.fromisoformat("2026-06-01T00:00:00Z").timestamp() + at
    first, after = local_day(datetime.fromtimestamp(t, UTC), tz)
    s = t + near
    same = datetime.fromtimestamp(s, tz).date() == datetime.fromtimestamp(t, tz).date()
    assert (first <= s < after) is same


@FAST
@given(SEQUENCES, SEQUENCES)
def test_a_step_and_a_merge_never_change_the_states_they_were_given(
    first: tuple[list[Op], str | None], second: tuple[list[Op], str | None]
) -> None:
    """The shell reuses a state it decoded for the next event of the person (and for equal
    bytes read back), so no later step may change a state it was given, nor a merge either
    profile: every state keeps the encoding it had when it was made."""
    from processor.journey.merge import absorb

    made: list[tuple[Any, bytes]] = []
    for ops, tz in (first, second):
        for _, sim, _ in _run(ops, tz):
            if sim.state is not None:
                made.append((sim.state, encode(sim.state)))
    states = [s for s, _ in made]
    if len(states) >= 2:
        a, b = states[len(states) // 2], states[-1]
        absorb(a, b, "C-1", START + timedelta(days=400), LIFECYCLE)
        absorb(None, b, "C-1", START + timedelta(days=400), LIFECYCLE)
    assert [encode(s) for s, _ in made] == [raw for _, raw in made]
