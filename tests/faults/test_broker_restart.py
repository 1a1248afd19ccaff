"""The broker goes away mid-run, cleanly and by SIGKILL, and comes back: the workers carry on.

An eighth of the baseline's customers is published to two workers; twice during the run the
only broker is stopped (once with SIGTERM, once with SIGKILL), left down for `DOWN_S` seconds
and started again on the same data directory and port. Nobody restarts the workers: they must
reconnect by themselves, and the run must end exactly as the undisturbed baseline did for
these customers, every inbound message processed or dead-lettered.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.brokers.apache_kafka import ApacheKafka
from tests.support import faults
from tests.support.worker import WorkerProcess

pytestmark = [pytest.mark.broker, pytest.mark.timeout(faults.timeout_s(0.125))]

DOWN_S = 8.0


def test_workers_recover_by_themselves_when_the_broker_restarts(
    kafka: ApacheKafka, traffic: faults.Traffic, baseline: faults.Outputs, tmp_path: Path
) -> None:
    mine = traffic.subset(8, 1)
    # Published faster than two workers process it here, so that the broker goes away with
    # messages in hand (at 250/s the workers kept up, and it went away with none).
    spread_s = len(mine.messages) / 2500
    workers = [WorkerProcess(kafka.bootstrap, tmp_path / f"w{i}") for i in range(2)]
    outages: list[str] = []
    in_hand: list[int] = []
    for worker in workers:
        faults.started(worker)
    began = time.monotonic()
    publisher = faults.Publisher(kafka.bootstrap, mine.messages, spread_s=spread_s, chunks=40)
    publisher.start()
    try:
        for share, how in ((0.3, "SIGTERM"), (0.65, "SIGKILL")):
            time.sleep(max(0.0, began + spread_s * share - time.monotonic()))
            with publisher.paused():
                behind = faults.lag(kafka.bootstrap)
                in_hand.append(behind)
                down = time.monotonic()
                if how == "SIGTERM":
                    kafka.stop()
                else:
                    kafka.kill()
                time.sleep(DOWN_S)
                kafka.start()
                back = time.monotonic()
            progress = faults.wait_progress(kafka.bootstrap, timeout_s=180)
            outages.append(
                f"{how} with {behind} messages in hand: down {back - down:.1f} s (broker "
                f"start {kafka.start_seconds:.1f} s), workers committing again "
                f"{progress:.1f} s after it was back"
            )
        coords = publisher.join()
        settle_s = faults.wait_settled(kafka.bootstrap, timeout_s=900)
        took = time.monotonic() - began
        exits = [w.proc.poll() if w.proc else "gone" for w in workers]
        got = asyncio.run(faults.read_outputs(kafka.bootstrap))
    finally:
        for worker in workers:
            worker.stop()

    want = baseline.only(mine.people.values())
    faults.report(
        f"broker restarts: {len(mine.messages)} messages, 2 workers; {'; '.join(outages)}; "
        f"done in {took:.0f} s ({settle_s:.0f} s after publishing); action messages "
        f"{sum(got.actions.values())} for {len(got.actions)} action ids (baseline "
        f"{len(want.actions)})"
    )
    assert exits == [None, None], "a worker exited: it must ride out the broker's absence"
    assert any(in_hand), "the broker went away with nothing in hand: publish faster"
    assert faults.differences(want, got) == []
    assert faults.accounted(mine, coords, got) == []
    assert got.seen == set(mine.event_ids.values())
