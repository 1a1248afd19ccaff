"""The pure step function: timers in and out, policies in isolation, determinism, bounds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from processor.journey import policies
from processor.journey.engine import EventInput, TimerFired, action_id, erase, fire_due, step
from processor.journey.state import (
    STATE_VERSION,
    CustomerState,
    Timer,
    as_datetime,
    decode,
    due_timers,
    encode,
)
from tests.unit.journey.support import LIFECYCLE, touch

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
STEP = LIFECYCLE.step_by_name


def _state(tz: str | None = None) -> CustomerState:
    return CustomerState(customer_id="C-1", stage="purchase", stage_since=0.0, timezone=tz)


@pytest.mark.parametrize(
    ("at", "tz", "expected"),
    [
        ("2026-11-23T12:00:00Z", None, "2026-11-23T12:00:00Z"),  # 13:00 CET: not quiet
        ("2026-11-23T19:59:59Z", None, "2026-11-23T19:59:59Z"),  # 20:59:59 CET
        ("2026-11-23T20:00:00Z", None, "2026-11-24T07:00:00Z"),  # 21:00 CET
        ("2026-11-23T23:30:00Z", None, "2026-11-24T07:00:00Z"),  # 00:30 CET
        ("2026-11-24T06:59:59Z", None, "2026-11-24T07:00:00Z"),  # 07:59:59 CET
        ("2026-11-24T07:00:00Z", None, "2026-11-24T07:00:00Z"),  # 08:00 CET
        ("2026-07-01T19:30:00Z", None, "2026-07-02T06:00:00Z"),  # 21:30 CEST -> 08:00 CEST
        # Spring forward, 29 March 2026: 02:00 CET becomes 03:00 CEST.
        ("2026-03-28T21:00:00Z", None, "2026-03-29T06:00:00Z"),  # 22:00 CET -> 08:00 CEST
        ("2026-03-29T00:30:00Z", None, "2026-03-29T06:00:00Z"),  # 01:30 CET
        ("2026-03-29T01:30:00Z", None, "2026-03-29T06:00:00Z"),  # 03:30 CEST
        # Fall back, 25 October 2026: 03:00 CEST becomes 02:00 CET.
        ("2026-10-24T19:30:00Z", None, "2026-10-25T07:00:00Z"),  # 21:30 CEST -> 08:00 CET
        ("2026-10-25T00:30:00Z", None, "2026-10-25T07:00:00Z"),  # 02:30 CEST (first pass)
        ("2026-10-25T01:30:00Z", None, "2026-10-25T07:00:00Z"),  # 02:30 CET (second pass)
        ("2026-11-24T02:00:00Z", "America/New_York", "2026-11-24T13:00:00Z"),  # 21:00 EST
        ("2026-11-23T13:00:00Z", "Asia/Tokyo", "2026-11-23T23:00:00Z"),  # 22:00 JST
    ],
)
def test_quiet_hours_move_send_after_to_the_next_local_8_am(
    at: str, tz: str | None, expected: str
) -> None:
    got = policies.after_quiet_hours(
        datetime.fromisoformat(at), _state(tz), STEP["welcome"], LIFECYCLE
    )
    assert got == datetime.fromisoformat(expected)


@pytest.mark.parametrize("template_step", ["onboarding", "browse_retarget", "detractor_followup"])
def test_quiet_hours_spare_transactional_ads_and_crm(template_step: str) -> None:
    at = datetime.fromisoformat("2026-11-23T23:00:00Z")
    assert policies.after_quiet_hours(at, _state(), STEP[template_step], LIFECYCLE) == at


def _ts(*isos: str) -> list[float]:
    return [datetime.fromisoformat(i).timestamp() for i in isos]


@pytest.mark.parametrize(
    ("sent", "at", "tz", "ok"),
    [
        ([], "2026-11-23T10:00:00Z", None, True),
        (_ts("2026-11-23T09:00:00Z"), "2026-11-23T10:00:00Z", None, True),
        (_ts("2026-11-23T08:00:00Z", "2026-11-23T09:00:00Z"), "2026-11-23T10:00:00Z", None, False),
        # 23:30 UTC is already the next day in Berlin: a new calendar day.
        (_ts("2026-11-23T08:00:00Z", "2026-11-23T09:00:00Z"), "2026-11-23T23:30:00Z", None, True),
        # ... but not yet in New York.
        (_ts("2026-11-23T18:00:00Z", "2026-11-23T19:00:00Z"), "2026-11-23T23:30:00Z",
         "America/New_York", False),
        (_ts("2026-11-17T10:00:01Z", "2026-11-20T10:00:00Z", "2026-11-22T10:00:00Z"),
         "2026-11-24T10:00:00Z", None, False),
        (_ts("2026-11-17T10:00:00Z", "2026-11-20T10:00:00Z", "2026-11-22T10:00:00Z"),
         "2026-11-24T10:00:00Z", None, True),
        # A send already planned later (quiet hours) counts for the windows it shares.
        (_ts("2026-11-25T07:00:00Z", "2026-11-27T07:00:00Z", "2026-11-29T07:00:00Z"),
         "2026-11-24T10:00:00Z", None, False),
    ],
)  # fmt: skip
def test_frequency_caps(sent: list[float], at: str, tz: str | None, ok: bool) -> None:
    state = _state(tz)
    state.sent = sent
    assert policies.within_caps(state, datetime.fromisoformat(at), LIFECYCLE) is ok


def test_timers_are_set_and_cancelled_in_the_state() -> None:
    out = step(None, touch("c1", "cart_add", T0, product_id="P-1"), T0, LIFECYCLE)
    pending = due_timers(out.state)
    assert [(t.id, t.due, t.name) for t in pending] == [
        ("wait:abandoned_cart:c1", T0 + timedelta(hours=1), "wait:abandoned_cart"),
    ]
    assert pending[0].payload == {
        "trigger": "c1", "type": "cart_add", "at": T0.timestamp(), "key": "c1", "props": {},
    }  # fmt: skip
    at = T0 + timedelta(minutes=5)
    buy = step(out.state, touch("o1", "order_placed", at, order_id="O-1", value=5.0), at, LIFECYCLE)
    assert buy.state is not None
    ms = round(at.timestamp() * 1000)
    assert sorted(buy.state.timers) == [
        "after:onboarding_tips:o1",
        f"stage:lapses@{ms}",
        f"stage:stays_a_customer@{ms}",
        "wait:review_request:O-1",
    ]


def test_a_fired_timer_emits_once_and_leaves_the_state() -> None:
    state = step(None, touch("n1", "newsletter_subscribe", T0), T0, LIFECYCLE).state
    at = T0 + timedelta(minutes=1)
    state = step(state, touch("c1", "cart_add", at, product_id="P-1"), at, LIFECYCLE).state
    (timer,) = due_timers(state)
    fire = TimerFired.of("C-1", timer)
    out = step(state, fire, timer.due, LIFECYCLE)
    assert [a.template for a in out.actions] == ["cart_reminder"]
    assert out.actions[0].action_id == action_id("lifecycle", "abandoned_cart", "C-1", "c1")
    assert due_timers(out.state) == []
    again = step(out.state, fire, timer.due, LIFECYCLE)
    assert again.actions == []
    assert again.state is out.state


def test_a_timer_fires_whatever_its_due_time_in_epoch_seconds() -> None:
    """A due time is stored in epoch seconds and fired through a datetime (microseconds); a
    float that does not survive that trip unchanged (a compressed 42 ms wait makes many) must
    still fire, once, and `fire_due` must not spin on it."""
    state = step(None, touch("n1", "newsletter_subscribe", T0), T0, LIFECYCLE).state
    state = step(state, touch("c1", "cart_add", T0, product_id="P-1"), T0, LIFECYCLE).state
    assert state is not None
    (tid,) = state.timers
    due = next(
        x
        for x in (T0.timestamp() + 3600 + n / 1000 + 0.042 for n in range(1000))
        if as_datetime(x).timestamp() != x
    )
    state.timers[tid] = (due, *state.timers[tid][1:])
    out = fire_due(state, "C-1", as_datetime(due) + timedelta(milliseconds=1), LIFECYCLE)
    assert [a.template for a in out.actions] == ["cart_reminder"]
    assert len(out.fired) == 1
    assert out.state is not None
    assert out.state.timers == {}


def _moves(outs: list[Any]) -> list[tuple[str | None, str, str, datetime]]:
    return [
        (t.from_stage, t.to_stage, t.trigger_type, t.at) for out in outs for t in out.transitions
    ]


def test_an_event_comes_after_the_timers_due_before_it_whenever_the_clock_fires_them() -> None:
    """A purchase on day 100 after a first one on day 0, processed late (a backlog): the person
    entered retention on day 30 and lapsed on day 90 before it, whether the worker's clock
    fired those timers before the late event arrived or not; the moves are the same."""
    first = step(None, touch("o1", "order_placed", T0, order_id="O-1", value=5.0), T0, LIFECYCLE)
    late = T0 + timedelta(days=100)
    buy = touch("o2", "order_placed", late, order_id="O-2", value=5.0)
    now = late + timedelta(minutes=3)

    event_first = step(first.state, buy, now, LIFECYCLE)
    clock_first = fire_due(first.state, "C-1", now, LIFECYCLE, until=late)
    then_event = step(clock_first.state, buy, now, LIFECYCLE)

    want = [
        ("purchase", "retention", "timer", T0 + timedelta(days=30)),
        ("retention", "lapsed", "timer", T0 + timedelta(days=90)),
        ("lapsed", "retention", "order_placed", late),
    ]
    assert _moves([event_first]) == want
    assert _moves([clock_first, then_event]) == want
    assert [f.name for f in event_first.fired] == [f.name for f in clock_first.fired]
    assert event_first.state is not None
    assert then_event.state is not None
    assert encode(event_first.state) == encode(then_event.state)


def test_timers_due_after_an_event_or_ahead_of_the_clock_wait_for_it() -> None:
    """Only timers due by the event's time fire before it, and never before the clock says."""
    first = step(None, touch("o1", "order_placed", T0, order_id="O-1", value=5.0), T0, LIFECYCLE)
    day_10 = touch("v1", "product_view", T0 + timedelta(days=10), product_id="P-1")
    out = step(first.state, day_10, T0 + timedelta(days=40), LIFECYCLE)
    assert out.fired
    assert all(f.due <= day_10.occurred_at for f in out.fired)
    assert _moves([out]) == []  # retention (day 30) waits for the clock
    early = T0 + timedelta(days=30, seconds=-1)  # upstream clock ahead of the worker's
    ahead = touch("v2", "product_view", T0 + timedelta(days=30, seconds=100), product_id="P-1")
    out = step(first.state, ahead, early, LIFECYCLE)
    assert all(f.due <= early for f in out.fired)
    assert _moves([out]) == []


@pytest.mark.parametrize(
    ("change", "late_s"),
    [
        (lambda t: TimerFired("C-1", "wait:abandoned_cart:nope", t.name, t.due, t.payload), 0),
        (lambda t: TimerFired("C-1", t.id, t.name, t.due - timedelta(seconds=1), t.payload), 0),
        (lambda t: TimerFired.of("C-1", t), -1),  # early
    ],
)
def test_a_stale_early_or_unknown_timer_is_a_no_op(change: object, late_s: int) -> None:
    state = step(None, touch("c1", "cart_add", T0, product_id="P-1"), T0, LIFECYCLE).state
    (timer,) = due_timers(state)
    fire = change(timer)  # type: ignore[operator]
    out = step(state, fire, timer.due + timedelta(seconds=late_s), LIFECYCLE)
    assert out.state is state
    assert (out.actions, out.transitions, out.suppressed) == ([], [], [])
    assert step(None, fire, timer.due, LIFECYCLE).state is None


def test_erase_cancels_every_pending_timer() -> None:
    state = step(
        None, touch("o1", "order_placed", T0, order_id="O-1", value=5.0), T0, LIFECYCLE
    ).state
    assert state is not None
    out = erase(state, "C-1", "req-1", T0, LIFECYCLE)
    assert out.state is None
    assert len(state.timers) == 4  # all of them gone with the state
    (receipt,) = out.transitions
    assert (receipt.from_stage, receipt.to_stage, receipt.trigger_event_id) == (
        "purchase",
        "erased",
        "req-1",
    )


def test_step_never_changes_the_state_it_is_given() -> None:
    state = step(None, touch("n1", "newsletter_subscribe", T0), T0, LIFECYCLE).state
    assert state is not None
    before = encode(state)
    step(state, touch("o1", "order_placed", T0, order_id="O-1", value=5.0), T0, LIFECYCLE)
    assert encode(state) == before


def test_a_copy_of_a_state_has_every_field() -> None:
    state = step(
        None, touch("c1", "cart_add", T0, product_id="P-1", price=2.5), T0, LIFECYCLE
    ).state
    assert state is not None
    copy = state.copy()
    assert copy == state  # compares every field: one the copy left out raises
    assert copy.cart is not state.cart
    assert copy.timers is not state.timers


def test_same_inputs_same_outcome_and_distinct_ids_per_step() -> None:
    inp = touch("o1", "order_placed", T0, order_id="O-1", value=900.0)
    a, b = step(None, inp, T0, LIFECYCLE), step(None, inp, T0, LIFECYCLE)
    assert a.actions == b.actions
    assert a.transitions == b.transitions
    ids = {x.action_id for x in a.actions}
    assert len(ids) == len(a.actions) == 2  # order_welcome and loyalty
    assert action_id("lifecycle", "onboarding", "C-1", "o1") != action_id(
        "lifecycle", "onboarding_tips", "C-1", "o1"
    )


def test_state_round_trips_and_refuses_other_versions() -> None:
    state = step(
        None, touch("c1", "cart_add", T0, product_id="P-1", price=2.5), T0, LIFECYCLE
    ).state
    assert state is not None
    assert decode(encode(state)) == state
    assert decode(None) is None
    raw = orjson.loads(encode(state))
    raw["v"] = STATE_VERSION - 1
    with pytest.raises(ValueError, match="journey state version 1 is not 2"):
        decode(orjson.dumps(raw))


def test_memory_per_person_is_bounded() -> None:
    state = None
    for i in range(600):
        at = T0 + timedelta(minutes=i)
        kind = ["product_view", "email_delivered", "review_submitted"][i % 3]
        table: dict[str, dict[str, Any]] = {
            "product_view": {"product_id": f"P-{i}", "category": f"cat-{i}"},
            "email_delivered": {"campaign_id": f"c{i}"},
            "review_submitted": {"rating": 3},
        }
        props = table[kind]
        state = step(state, touch(f"e{i}", kind, at, **props), at, LIFECYCLE).state
        state = step(
            state, touch(f"o{i}", "order_placed", at, order_id=f"O-{i}", value=1.0), at, LIFECYCLE
        ).state
    assert state is not None
    p = LIFECYCLE.policies
    assert len(state.seen) == p.dedupe_window_events
    assert len(state.touches) == p.max_touches
    assert len(state.recent) <= p.max_recent_events
    assert len(state.history) <= 32
    assert len(state.timers) <= 3 + p.max_pending_per_step * 3
    assert len(state.fired) <= p.max_keys_per_step * len(LIFECYCLE.steps)
    assert len(encode(state)) < 64 * 1024


def test_a_duplicate_changes_nothing() -> None:
    inp = touch("n1", "newsletter_subscribe", T0)
    first = step(None, inp, T0, LIFECYCLE)
    again = step(first.state, inp, T0 + timedelta(hours=1), LIFECYCLE)
    assert again.duplicate
    assert again.state is first.state
    assert (again.actions, again.transitions, again.suppressed) == ([], [], [])


def test_event_input_and_timer_are_plain_values() -> None:
    inp = touch("n1", "login", T0)
    assert isinstance(inp, EventInput)
    assert inp.customer_id == "C-1"
    timer = Timer("x", T0, "wait:welcome", {"a": 1})
    assert TimerFired.of("C-1", timer) == TimerFired("C-1", "x", "wait:welcome", T0, {"a": 1})


def test_a_timer_whose_rule_left_the_journey_file_is_dropped_and_counted(tmp_path: Any) -> None:
    from processor.journey.definition import load_journey
    from processor.settings import DEFAULT_JOURNEY_FILE

    # The shipped file without the abandoned_cart rule (up to the next rule).
    text = DEFAULT_JOURNEY_FILE.read_text("utf-8")
    start = text.index("  - name: abandoned_cart\n")
    end = text.index("  - name: ", start + 1)
    edited = tmp_path / "lifecycle.yaml"
    edited.write_text(text[:start] + text[end:], "utf-8")
    without = load_journey(edited)
    armed = step(None, touch("e1", "cart_add", T0, product_id="P-1"), T0, LIFECYCLE).state
    assert armed is not None
    assert "wait:abandoned_cart" in [t.name for t in due_timers(armed)]

    later = T0 + timedelta(hours=2)
    out = fire_due(armed, "C-1", later, without)

    assert "abandoned_cart" in out.timers_dropped
    assert [a for a in out.actions if a.rule == "abandoned_cart"] == []
    assert out.state is not None
    assert not any(t.name == "wait:abandoned_cart" for t in due_timers(out.state))
    # With the rule still in the file, the same timer fires as always.
    kept = fire_due(armed, "C-1", later, LIFECYCLE)
    assert kept.timers_dropped == []
