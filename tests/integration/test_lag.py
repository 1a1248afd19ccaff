"""The lag gauge under overload: it reads what Kafka's consumer-group lag says.

Messages are published faster than the worker drains them (it commits after every message:
TOUCHPOINT_BATCH_MAX=1), for long enough that its fetch buffers fill and the fetcher stops
fetching the partitions whose messages wait (where a gauge built on the last fetch's high
watermark read as low as a quarter of the real lag). At moments
while the lag grows, `touchpoint_consumer_lag` summed over the inbound topics is compared with
the group's lag measured from the broker (end offsets minus committed offsets) just before and
just after reading it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from processor import topics as t
from tests.support import faults
from tests.support.worker import WorkerProcess, metric_values

pytestmark = pytest.mark.broker

#: Messages per second offered: several times what one worker drains on this machine when it
#: commits after every message.
RATE = 8000
PUBLISH_S = 24.0
#: How far behind the real lag the gauge may trail (seconds).
TRAIL_S = 4.0


def _event(n: int) -> bytes:
    return orjson.dumps({
        "event_id": f"lag-{n}",
        "type": "page_view",
        "occurred_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "identity": {"customer_id": f"C-{n % 5000}"},
        "properties": {"url": "/"},
    })  # fmt: skip


async def _publish(bootstrap: str, stop: threading.Event) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20)
    await producer.start()
    try:
        n, began = 0, time.monotonic()
        while not stop.is_set() and time.monotonic() - began < PUBLISH_S:
            due = int((time.monotonic() - began) * RATE)
            batch = [await producer.send(t.WEB, _event(i), key=b"%d" % i) for i in range(n, due)]
            n = due
            await asyncio.gather(*batch)
            await asyncio.sleep(0.05)
    finally:
        await producer.stop()


def _gauge(worker: WorkerProcess) -> float:
    samples = metric_values(worker.metrics(), "touchpoint_consumer_lag_messages")
    return sum(v for labels, v in samples.items() if dict(labels)["topic"] in t.INBOUND)


def _real(bootstrap: str) -> int:
    return asyncio.run(faults._lag(bootstrap, t.INBOUND))[0]


def test_the_lag_gauge_follows_the_real_lag_under_overload(
    topics_ready: str, tmp_path: Path
) -> None:
    stop = threading.Event()
    with WorkerProcess(topics_ready, tmp_path / "w", TOUCHPOINT_BATCH_MAX="1") as worker:
        publisher = threading.Thread(target=asyncio.run, args=(_publish(topics_ready, stop),))
        publisher.start()
        #: (monotonic time, real lag before, gauge, real lag after)
        readings: list[tuple[float, int, float, int]] = []
        try:
            time.sleep(4)
            while publisher.is_alive():
                at, before = time.monotonic(), _real(topics_ready)
                gauge = _gauge(worker)
                readings.append((at, before, gauge, _real(topics_ready)))
                time.sleep(0.5)
        finally:
            stop.set()
            publisher.join()
    # The last reading may straddle the end of publishing, when the lag stops growing and the
    # worker's commits start to shrink it under the gauge's older sample: leave it out.
    deep = [r for r in readings[:-1] if r[1] >= 20_000 and r[0] >= readings[0][0] + TRAIL_S]
    assert len(deep) >= 5, f"the worker was never overloaded enough to tell: {readings}"
    # The gauge is a sample the worker takes once a second, later when its loop is busy: it
    # may show the lag of a few seconds ago, never less, and never more than there is.
    for at, _, gauge, after in deep:
        recent = [before for t0, before, _, _ in readings if at - TRAIL_S <= t0 <= at]
        assert min(recent) <= gauge <= after, (gauge, recent, after, readings)
