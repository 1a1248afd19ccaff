"""Durable timers on a real broker: the abandoned-cart reminder with hours made seconds.

The default journey runs with every hour lasting a few seconds (days a minute or more, so
that a late firing after a crash is not stale), against real worker processes.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from processor import topics as t
from tests.support.journeys import shortened
from tests.support.kafka import produce, read_json
from tests.support.worker import WorkerProcess, metric_values

pytestmark = pytest.mark.broker


def _event(
    eid: str, typ: str, customer: str, at: datetime | None = None, **props: object
) -> tuple[str, bytes, bytes]:
    value = {
        "event_id": eid,
        "type": typ,
        "occurred_at": (at or datetime.now(UTC)).isoformat().replace("+00:00", "Z"),
        "identity": {"customer_id": customer},
        "context": {"timezone": "Europe/Berlin"},
        "properties": props,
    }
    return t.WEB, customer.encode(), orjson.dumps(value)


def _shopper(customer: str) -> list[tuple[str, bytes, bytes]]:
    """Signs up with email consent, then fills a cart."""
    return [
        _event(f"{customer}-signup", "signup", customer, consent={"email": True}),
        _event(f"{customer}-cart", "cart_add", customer, product_id="P-1", quantity=1, price=9.5,
               currency="EUR"),
    ]  # fmt: skip


def _reminders(bootstrap: str, *, expect: int, timeout_s: float) -> dict[str, list[str]]:
    """customer_id -> action_ids of every cart_reminder on journey.actions, in order read."""
    actions = asyncio.run(read_json(bootstrap, t.ACTIONS, expect=expect, timeout_s=timeout_s))
    out: dict[str, list[str]] = {}
    for a in actions:
        if a["template"] == "cart_reminder":
            out.setdefault(str(a["customer_id"]), []).append(str(a["action_id"]))
    return out


def _wait_for_reminder(bootstrap: str, customer: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = _reminders(
            bootstrap,
            expect=10**9,
            timeout_s=0.5,
        )
        if customer in got:
            return
    raise AssertionError(f"no cart_reminder for {customer} within {timeout_s} s")


def _processed(worker: WorkerProcess) -> float:
    return sum(metric_values(worker.metrics(), "touchpoint_events_processed_total").values())


def _wait_processed(worker: WorkerProcess, n: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while _processed(worker) < n:
        assert time.monotonic() < deadline, worker.log_tail()
        time.sleep(0.2)


def test_reminder_fires_once_and_a_purchase_cancels_it(topics_ready: str, tmp_path: Path) -> None:
    journey = shortened(tmp_path, hour_s=3, day_s=60)
    env = {"TOUCHPOINT_JOURNEY_FILE": str(journey), "TOUCHPOINT_TIMER_TICK_S": "0.2"}
    with WorkerProcess(topics_ready, tmp_path / "w1", **env) as worker:
        asyncio.run(produce(topics_ready, [*_shopper("C-A"), *_shopper("C-B")]))
        asyncio.run(produce(topics_ready, [
            _event("C-B-order", "order_placed", "C-B", order_id="O-1", value=9.5, currency="EUR"),
        ]))  # fmt: skip
        _wait_for_reminder(topics_ready, "C-A", timeout_s=30)
        time.sleep(4)  # B's reminder would have been due by now: it must never come
        reminders = _reminders(topics_ready, expect=10**9, timeout_s=1)
        fired = sum(metric_values(worker.metrics(), "touchpoint_timers_fired_total").values())
    assert reminders == {"C-A": [reminders["C-A"][0]]}
    assert fired >= 1


def test_reminder_due_while_the_worker_is_killed_fires_once_after_restart(
    topics_ready: str, tmp_path: Path
) -> None:
    journey = shortened(tmp_path, hour_s=6, day_s=120)
    env = {"TOUCHPOINT_JOURNEY_FILE": str(journey), "TOUCHPOINT_TIMER_TICK_S": "0.2"}
    worker = WorkerProcess(topics_ready, tmp_path / "w1", **env)
    worker.start()
    try:
        asyncio.run(produce(topics_ready, _shopper("C-K")))
        _wait_processed(worker, 2)
        assert worker.proc is not None
        worker.proc.kill()  # SIGKILL: no shutdown, no final commit
        worker.proc.wait()
        time.sleep(7)  # the reminder falls due while no worker runs
        assert _reminders(topics_ready, expect=10**9, timeout_s=0.5) == {}
        worker.start()
        _wait_for_reminder(topics_ready, "C-K", timeout_s=60)
        time.sleep(3)
        reminders = _reminders(topics_ready, expect=10**9, timeout_s=1)
    finally:
        worker.stop()
    assert set(reminders) == {"C-K"}
    assert len(set(reminders["C-K"])) == 1, reminders


def test_reminder_fires_once_after_its_partition_moved_to_another_worker(
    topics_ready: str, tmp_path: Path
) -> None:
    journey = shortened(tmp_path, hour_s=40, day_s=600)
    env = {"TOUCHPOINT_JOURNEY_FILE": str(journey), "TOUCHPOINT_TIMER_TICK_S": "0.2"}
    first = WorkerProcess(topics_ready, tmp_path / "w1", **env)
    second = WorkerProcess(topics_ready, tmp_path / "w2", **env)
    first.start()
    try:
        asyncio.run(produce(topics_ready, _shopper("C-M")))
        _wait_processed(first, 2)  # the only worker: C-M's partition is first's
        second.start()
        assert first.proc is not None
        first.proc.kill()  # the owner dies; second must take the partition and its timers over
        first.proc.wait()
        _wait_for_reminder(topics_ready, "C-M", timeout_s=90)
        time.sleep(3)
        reminders = _reminders(topics_ready, expect=10**9, timeout_s=1)
        fired = sum(metric_values(second.metrics(), "touchpoint_timers_fired_total").values())
    finally:
        first.stop()
        second.stop()
    assert set(reminders) == {"C-M"}
    assert len(set(reminders["C-M"])) == 1, reminders
    assert fired >= 1  # fired by the second worker, from state it recovered from the changelog


def _moves(
    bootstrap: str, expect: int, settle_s: float = 2.0
) -> dict[str, list[tuple[object, ...]]]:
    """customer_id -> (from, to, trigger type, at) of each transition, in the order emitted."""
    out: dict[str, list[tuple[object, ...]]] = {}
    read = read_json(bootstrap, t.TRANSITIONS, expect=expect, timeout_s=30, settle_s=settle_s)
    for tr in asyncio.run(read):
        move = (tr["from_stage"], tr["to_stage"], tr["trigger_type"], tr["at"])
        out.setdefault(str(tr["customer_id"]), []).append(move)
    return out


def test_a_backlog_moves_people_as_their_events_and_due_times_say(
    topics_ready: str, tmp_path: Path
) -> None:
    """Two people with the same events: a purchase 100 days ago and one now. One's events
    arrive together (a backlog); the other's second purchase only after the worker's clock
    fired the timers that fell due in between (30 days: retention; 90: lapsed). Both are moved
    alike, each move dated by its event or due time: how the clock and the arrivals interleaved
    changes nothing."""
    now = datetime.now(UTC).replace(microsecond=0)
    then = now - timedelta(days=100)

    def purchases(customer: str) -> list[tuple[str, bytes, bytes]]:
        return [
            _event(f"{customer}-{n}", "order_placed", customer, at, order_id=f"{customer}-O{n}",
                   value=20.0, currency="EUR")
            for n, at in ((1, then), (2, now))
        ]  # fmt: skip

    env = {"TOUCHPOINT_TIMER_TICK_S": "0.2"}
    with WorkerProcess(topics_ready, tmp_path / "w1", **env):
        asyncio.run(produce(topics_ready, purchases("C-BACKLOG")))
        first, second = purchases("C-LIVE")
        asyncio.run(produce(topics_ready, [first]))
        # The live one: none→awareness→purchase, then the clock fires its two timers.
        deadline = time.monotonic() + 30
        while len(_moves(topics_ready, expect=9, settle_s=0).get("C-LIVE", [])) < 4:
            assert time.monotonic() < deadline, "the overdue timers never fired"
        asyncio.run(produce(topics_ready, [second]))
        got = _moves(topics_ready, expect=10)
    day = timedelta(days=1)
    iso = [(then + d).isoformat().replace("+00:00", "Z") for d in (0 * day, 30 * day, 90 * day)]
    want = [
        (None, "awareness", "order_placed", iso[0]),
        ("awareness", "purchase", "order_placed", iso[0]),
        ("purchase", "retention", "timer", iso[1]),
        ("retention", "lapsed", "timer", iso[2]),
        ("lapsed", "retention", "order_placed", now.isoformat().replace("+00:00", "Z")),
    ]
    assert got == {"C-BACKLOG": want, "C-LIVE": want}
