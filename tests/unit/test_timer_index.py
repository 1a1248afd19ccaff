"""The due-timer index: derived from state, re-checked, re-sent only after a pause."""

from __future__ import annotations

from processor.journey.state import CustomerState, first_due
from processor.stream.timers.index import TimerIndex


def _state(*dues: float) -> CustomerState:
    s = CustomerState(customer_id="C-1", stage="awareness", stage_since=0.0)
    s.timers = {f"t{i}": (due, f"t{i}", {}) for i, due in enumerate(dues)}
    return s


def test_first_due() -> None:
    assert first_due(None) is None
    assert first_due(_state()) is None
    assert first_due(_state(30.0, 10.0, 20.0)) == 10.0


def test_due_returns_each_key_once_and_only_when_due() -> None:
    index = TimerIndex()
    index.note(0, b"a", _state(10.0))
    index.note(0, b"a", _state(5.0))  # a stale entry for the same key stays behind
    index.note(1, b"b", _state(50.0))
    assert index.due({0, 1}, 4.0, resend_after_s=30, limit=10) == []
    assert index.due({0, 1}, 20.0, resend_after_s=30, limit=10) == [(0, b"a")]
    assert index.due({0, 1}, 20.0, resend_after_s=30, limit=10) == []  # popped, not re-added


def test_other_partitions_are_left_alone() -> None:
    index = TimerIndex()
    index.note(3, b"a", _state(1.0))
    assert index.due({0, 1}, 100.0, resend_after_s=30, limit=10) == []
    assert index.due({3}, 100.0, resend_after_s=30, limit=10) == [(3, b"a")]


def test_sent_keys_wait_before_they_are_offered_again() -> None:
    index = TimerIndex()
    index.note(0, b"a", _state(1.0))
    assert index.due({0}, 2.0, resend_after_s=30, limit=10) == [(0, b"a")]
    index.push(0, 1.0, b"a")
    index.sent(b"a", 2.0)
    assert index.due({0}, 10.0, resend_after_s=30, limit=10) == []
    assert index.due({0}, 33.0, resend_after_s=30, limit=10) == [(0, b"a")]


def test_a_processed_key_is_offered_by_its_new_due_time() -> None:
    index = TimerIndex()
    index.note(0, b"a", _state(1.0))
    index.sent(b"a", 2.0)
    index.note(0, b"a", _state(100.0))  # the agent processed the firing: inflight cleared
    assert index.due({0}, 3.0, resend_after_s=30, limit=10) == [(0, b"a")]  # the stale entry
    assert index.due({0}, 50.0, resend_after_s=30, limit=10) == []
    assert index.due({0}, 100.0, resend_after_s=30, limit=10) == [(0, b"a")]


def test_limit_and_reset() -> None:
    index = TimerIndex()
    assert index.reset([(0, bytes([k]), float(k)) for k in range(10)]) == 10
    assert index.pending() == 10
    assert len(index.due({0}, 100.0, resend_after_s=30, limit=4)) == 4
    assert index.pending() == 6


def test_noting_the_same_due_time_again_adds_no_entry() -> None:
    index = TimerIndex()
    for _ in range(100):  # every event of a person whose next timer stays the same
        index.note(0, b"a", _state(50.0))
    assert index.pending() == 1
    index.note(0, b"a", None)  # no timer any more; a new one with the old due time counts
    index.note(0, b"a", _state(50.0))
    assert index.due({0}, 60.0, resend_after_s=30, limit=10) == [(0, b"a")]


def test_a_rebuild_keeps_what_the_agent_noted_after_its_snapshot() -> None:
    """The rebuild reads the table, then yields while it scans; the agent goes on meanwhile.
    A timer armed (or cancelled) after the snapshot must survive the reset."""
    index = TimerIndex()
    index.snapshot_taken()
    index.note(1, b"armed", _state(50.0))  # a cart_add processed during the scan
    index.note(2, b"cancelled", None)  # a purchase that cancelled the last timer
    snapshot = [(2, b"cancelled", 40.0), (3, b"old", 30.0)]
    assert index.reset(snapshot) == 2
    assert index.due([1, 2, 3], 100.0, resend_after_s=1.0, limit=10) == [(1, b"armed"), (3, b"old")]
    index.note(1, b"later", _state(60.0))  # after the reset: no longer recorded separately
    assert index.reset([]) == 0


def test_a_rebuild_superseded_by_a_newer_one_changes_nothing() -> None:
    """Two rebalances in a row: the first rebuild still scans when the second takes its
    snapshot. What the agent notes after the second snapshot must survive both resets."""
    index = TimerIndex()
    first = index.snapshot_taken()
    index.note(0, b"early", _state(20.0))  # before the second snapshot: the snapshot has it
    second = index.snapshot_taken()
    index.note(1, b"armed", _state(50.0))  # after it: only the notes know
    assert index.reset([(3, b"stale", 10.0)], first) is None  # superseded
    assert index.due([0, 1, 3], 100.0, resend_after_s=1.0, limit=10) == [
        (0, b"early"),
        (1, b"armed"),
    ]  # untouched by the superseded reset
    index.note(1, b"armed", _state(50.0))
    assert index.reset([(0, b"early", 20.0)], second) == 2
    assert index.due([0, 1, 3], 100.0, resend_after_s=1.0, limit=10) == [
        (0, b"early"),
        (1, b"armed"),
    ]
