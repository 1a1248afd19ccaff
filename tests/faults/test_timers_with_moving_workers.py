"""Timers while workers come and go: every due reminder once, no cancelled one ever.

Shoppers fill carts for the whole run (the journey's hour lasts `HOUR_S` seconds, so each
cart's reminder falls due a minute after it was filled); every other one buys at once, which
cancels the reminder. Meanwhile a second and a third worker join, and workers leave by SIGTERM
and by SIGKILL, at seeded random moments, so partitions and their pending timers move between
workers again and again. In the end every due reminder was sent with exactly one distinct
action_id (the one the engine derives from the cart), and no cancelled cart got one.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from processor import topics as t
from tests.brokers.apache_kafka import ApacheKafka
from tests.support import faults
from tests.support.journeys import shortened
from tests.support.worker import WorkerProcess

pytestmark = [pytest.mark.broker, pytest.mark.timeout(faults.timeout_s(0.125))]

HOUR_S = 60
SEED = int(os.environ.get("TOUCHPOINT_FAULT_SEED", "20240605"))
#: (share of the run, what happens); the moments get a seeded random jitter.
PLAN = [  # after the first worker started
    (0.12, "start"),
    (0.25, "start"),  # three workers
    (0.38, "kill"),  # two
    (0.50, "stop"),  # one
    (0.60, "start"),
    (0.70, "start"),  # three again
    (0.82, "kill"),
    (0.90, "stop"),  # one left to finish
]


def test_every_due_timer_fires_once_and_no_cancelled_one_while_workers_move(
    kafka: ApacheKafka, tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    n = max(2000, faults.size() // 8)
    spread_s = n / 200  # 200 messages a second: two workers keep up even while rebalancing
    journey = shortened(tmp_path, hour_s=HOUR_S, day_s=3 * 3600)
    env = {"TOUCHPOINT_JOURNEY_FILE": str(journey), "TOUCHPOINT_TIMER_TICK_S": "0.2"}
    running = [WorkerProcess(kafka.bootstrap, tmp_path / "w0", **env)]
    events = [f"w0 ready in {faults.started(running[0]):.1f} s"]
    start = datetime.now(UTC)
    traffic = faults.shoppers(n, start, spread_s)
    last_due = max(start.timestamp() + spread_s, time.time()) + HOUR_S
    run_s = spread_s + HOUR_S
    began = time.monotonic()
    publisher = faults.Publisher(kafka.bootstrap, traffic.messages, spread_s=spread_s, chunks=60)
    publisher.start()
    try:
        for number, (share, what) in enumerate(PLAN, 1):
            moment = began + run_s * (share + rng.uniform(-0.04, 0.04))
            time.sleep(max(0.0, moment - time.monotonic()))
            if what == "start":
                worker = WorkerProcess(kafka.bootstrap, tmp_path / f"w{number}", **env)
                ready = faults.started(worker)
                running.append(worker)
                events.append(f"+w{number} ready in {ready:.1f} s ({len(running)} running)")
                continue
            leaving = running.pop(rng.randrange(len(running)))
            if what == "kill":
                faults.kill(leaving)
            else:
                leaving.stop()
            events.append(f"{what} {leaving.workdir.name} ({len(running)} running)")
        coords = publisher.join()
        time.sleep(max(0.0, last_due + 2 - time.time()))
        settle_s = faults.wait_settled(kafka.bootstrap, timeout_s=600, quiet_s=6)
        took = time.monotonic() - began
        got = asyncio.run(faults.read_outputs(kafka.bootstrap))
        actions = asyncio.run(faults.read_all(kafka.bootstrap, t.ACTIONS))
    finally:
        for worker in running:
            worker.stop()

    reminders: dict[str, set[str]] = {}
    copies = Counter[str]()
    for *_, value in actions:
        a = orjson.loads(value or b"{}")
        if a["template"] == "cart_reminder":
            reminders.setdefault(a["customer_id"], set()).add(a["action_id"])
            copies[a["action_id"]] += 1
    faults.report(
        f"timers (seed {SEED}): {len(traffic.messages)} messages, {len(traffic.due)} reminders "
        f"due, {len(traffic.cancelled)} cancelled by a purchase; workers: {'; '.join(events)}; "
        f"done in {took:.0f} s ({settle_s:.0f} s to settle after the last due time); "
        f"reminder messages {sum(copies.values())} for {len(copies)} action ids"
    )
    expected = {
        cid: {faults.expected_action_id("lifecycle", "abandoned_cart", cid, cart)}
        for cid, cart in traffic.due.items()
    }
    fired_for_cancelled = sorted(set(reminders) & traffic.cancelled)
    assert fired_for_cancelled == []
    missing = sorted(set(expected) - set(reminders))
    assert missing == [], f"{len(missing)} due reminders never sent: {missing[:5]}"
    assert reminders == expected
    assert faults.accounted(traffic, coords, got) == []
    assert got.seen == set(traffic.event_ids.values())
