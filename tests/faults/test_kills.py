"""SIGKILL a worker at random moments while it works: nothing is lost, nothing differs.

The same traffic as the undisturbed baseline run is published while the only worker is killed
(SIGKILL: no shutdown, no final commit) at seeded random moments and started again on the same
data directory. After it settles, the distinct action ids, the transitions and every person's
state in the journey changelog equal the baseline's, and every inbound message is accounted
for: processed (its event id in its person's state) or dead-lettered with the right kind.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from pathlib import Path

import pytest

from tests.brokers.apache_kafka import ApacheKafka
from tests.support import faults
from tests.support.worker import WorkerProcess

pytestmark = [pytest.mark.broker, pytest.mark.timeout(faults.timeout_s(1.0))]

KILLS = 6
#: The kill moments' seed; `TOUCHPOINT_FAULT_SEED` explores others.
SEED = int(os.environ.get("TOUCHPOINT_FAULT_SEED", "20240605"))


def test_sigkilled_worker_loses_nothing_and_changes_nothing(
    kafka: ApacheKafka, traffic: faults.Traffic, baseline: faults.Outputs, tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    n = len(traffic.messages)
    # Publish at twice the pace the undisturbed worker drained the same traffic, so that work
    # piles up, and kill as the publishing goes on: each kill then comes while messages wait.
    expected_s = baseline.took_s
    worker = WorkerProcess(kafka.bootstrap, tmp_path / "worker")
    recoveries: list[float] = []
    lags: list[int] = []
    first_ready = faults.started(worker)
    began = time.monotonic()
    publisher = faults.Publisher(
        kafka.bootstrap, traffic.messages, spread_s=expected_s / 2, chunks=50
    )
    publisher.start()
    try:
        for k in range(KILLS):
            # Kill k comes once the publisher has sent its share of the messages (plus a
            # seeded jitter), so that every kill meets work in hand however fast the worker
            # comes back (a fixed schedule let the last kills find it idle once restarts got
            # quicker).
            share = (k + 1) * n // (KILLS + 1)
            while len(publisher.coords) < share and not publisher.done:
                time.sleep(0.05)
            time.sleep(rng.uniform(0.0, 0.5))
            lags.append(faults.lag(kafka.bootstrap))
            faults.kill(worker)
            time.sleep(rng.uniform(0.0, 2.0))  # sometimes it comes back at once, sometimes not
            recoveries.append(faults.started(worker))
        coords = publisher.join()
        settle_s = faults.wait_settled(kafka.bootstrap, timeout_s=max(600, expected_s * 4))
        took = time.monotonic() - began
        got = asyncio.run(faults.read_outputs(kafka.bootstrap))
    finally:
        worker.stop()

    valid = n - len(traffic.invalid)
    distinct_events = len(set(traffic.event_ids.values()))
    faults.report(
        f"kills (seed {SEED}): {n} messages ({valid} valid, {len(traffic.invalid)} bad), "
        f"{KILLS} SIGKILLs with {lags} messages not yet committed at each; ready again after "
        f"{', '.join(f'{r:.1f}' for r in recoveries)} s (first start {first_ready:.1f} s); "
        f"done in {took:.0f} s ({settle_s:.0f} s after the last restart's publishing)"
    )
    faults.report(
        f"kills: events routed to people {got.routed} (baseline {baseline.routed}): "
        f"{got.routed - distinct_events} duplicates seen before dedupe "
        f"({valid - distinct_events} sent twice by the upstream, "
        f"{got.routed - baseline.routed} replayed after kills); "
        f"action messages {sum(got.actions.values())} for {len(got.actions)} action ids; "
        f"transition messages {sum(got.transitions.values())} for {len(got.transitions)}; "
        f"dead letters {sum(len(k) for k in got.letters.values())} for "
        f"{len(got.letters)} bad messages"
    )
    assert n >= faults.size()
    assert len(lags) == KILLS >= 5
    assert min(lags) > 0, "every kill must come while the worker has work in hand"
    diffs = faults.differences(baseline, got, limit=40)
    assert diffs == [], "\n".join(diffs)
    assert faults.accounted(traffic, coords, got) == []
    # received = processed + dead-lettered, and both sides are the same messages as sent.
    assert n == valid + len(traffic.invalid) == len(coords)
    assert got.seen == set(traffic.event_ids.values())
    assert len(got.letters) == len(traffic.invalid)
