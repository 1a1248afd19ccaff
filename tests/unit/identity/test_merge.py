"""Folding two profiles of one person: nothing lost, the same whichever comes first."""

from __future__ import annotations

from datetime import UTC, datetime

from processor.journey.definition import load_journey
from processor.journey.merge import MERGE, absorb, fold
from processor.journey.state import Cart, CustomerState
from processor.settings import DEFAULT_JOURNEY_FILE

JOURNEY = load_journey(DEFAULT_JOURNEY_FILE)
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def _anon() -> CustomerState:
    s = CustomerState(customer_id="anon:ck", stage="consideration", stage_since=100.0)
    s.seen = ["e1", "e2"]
    s.consent, s.consent_at = {"email": False}, {"email": 300.0}
    s.purchases, s.lifetime_value = 1, 20.0
    s.cart = Cart("e2", {"P-1": 10.0}, "EUR")
    s.touches = [("web", 100.0)]
    s.timers = {"wait:abandoned_cart:e2": (3700.0, "wait:abandoned_cart", {"at": 100.0})}
    s.identifiers = ["anonymous_id:ck"]
    return s


def _customer() -> CustomerState:
    s = CustomerState(customer_id="C-1", stage="purchase", stage_since=50.0)
    s.seen = ["e3"]
    s.consent, s.consent_at = {"email": True, "sms": True}, {"email": 200.0, "sms": 10.0}
    s.purchases, s.lifetime_value, s.last_purchase = 2, 100.0, 50.0
    s.cart = Cart("e4", {"P-2": 5.0}, "EUR")
    s.touches = [("store", 50.0)]
    s.timers = {"after:onboarding_tips:e3": (9000.0, "after:onboarding_tips", {"at": 50.0})}
    s.identifiers = ["customer_id:C-1"]
    return s


def test_fold_keeps_everything_and_takes_the_furthest_stage() -> None:
    merged = fold(_anon(), _customer(), "C-1", JOURNEY)
    assert merged.customer_id == "C-1"
    assert merged.stage == "purchase"
    assert (merged.purchases, merged.lifetime_value) == (3, 120.0)
    assert merged.cart is not None
    assert (merged.cart.id, merged.cart.items) == ("e2", {"P-1": 10.0, "P-2": 5.0})
    # The most recent explicit statement wins: the anonymous opt-out came later (300 > 200).
    assert merged.consent == {"email": False, "sms": True}
    assert set(merged.timers) == {"wait:abandoned_cart:e2", "after:onboarding_tips:e3"}
    assert set(merged.seen) == {"e1", "e2", "e3"}
    assert sorted(merged.touches) == [("store", 50.0), ("web", 100.0)]
    assert set(merged.identifiers) == {"anonymous_id:ck", "customer_id:C-1"}


def test_fold_does_not_depend_on_the_order() -> None:
    one = fold(_anon(), _customer(), "C-1", JOURNEY).to_dict()
    other = fold(_customer(), _anon(), "C-1", JOURNEY).to_dict()
    one["seen"], other["seen"] = sorted(one["seen"]), sorted(other["seen"])
    assert one == other


def test_a_wait_the_other_profile_cancelled_later_is_dropped() -> None:
    anon = _anon()
    customer = _customer()
    # Bought after the anonymous cart was filled (at 100) and before its reminder (at 3700).
    customer.recent = [("order_placed", {}, 200.0)]
    merged = fold(anon, customer, "C-1", JOURNEY)
    assert "wait:abandoned_cart:e2" not in merged.timers
    # A purchase after the reminder was due cancels nothing.
    customer.recent = [("order_placed", {}, 5000.0)]
    merged = fold(_anon(), customer, "C-1", JOURNEY)
    assert "wait:abandoned_cart:e2" in merged.timers


def test_absorb_records_the_merge_with_one_transition() -> None:
    out = absorb(_customer(), _anon(), "C-1", NOW, JOURNEY)
    assert out.state is not None
    got = [
        (t.customer_id, t.from_stage, t.to_stage, t.trigger_type, t.trigger_event_id)
        for t in out.transitions
    ]
    assert got == [("C-1", "purchase", "purchase", MERGE, "merge:anon:ck")]
    fresh = absorb(None, _anon(), "C-1", NOW, JOURNEY)
    assert fresh.state is not None
    assert fresh.state.customer_id == "C-1"
    assert [(t.from_stage, t.to_stage) for t in fresh.transitions] == [(None, "consideration")]
