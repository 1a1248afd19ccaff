"""Bad input at volume: every malformed message dead-lettered with the right kind.

`faults.size()` malformed messages drawn by Hypothesis (tests/support/malformed.py: random
bytes, invalid UTF-8, nesting deeper than 1024 levels or than the contract's 32, times the
contract does not take, strings over the size limit, fields of the wrong type, missing
identifiers, future timestamps, unknown types, other channels' events) are interleaved with a
tenth of the baseline's customers and with valid events of nearly a megabyte. The worker's
size limit is 1,000,000 bytes, just under what Apache Kafka takes by default (1,048,588 with
the record's overhead): valid events at the limit and just under it must be processed, and
messages between the two dead-lettered as `too_large`. One worker must dead-letter each bad
message once, with the kind its construction calls for, process the valid traffic exactly as
the undisturbed baseline did, never restart, and keep its memory bounded.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from processor import topics as t
from tests.brokers.apache_kafka import ApacheKafka
from tests.support import faults, malformed
from tests.support.worker import WorkerProcess, metric_values

pytestmark = [pytest.mark.broker, pytest.mark.timeout(faults.timeout_s(1.0))]

MAX_EVENT_BYTES = 1_000_000
#: The largest message the broker takes with its default `message.max.bytes`, less a margin.
WIRE_BYTES = 1_048_000
#: One message in this many may be a heavy `too_large` one (up to WIRE_BYTES each).
HUGE_EVERY = 1000
#: Valid events of these sizes, each for a person of its own: at the limit and just under.
NEAR_LIMIT = (MAX_EVENT_BYTES, MAX_EVENT_BYTES - 1, 999_000, 990_000) * 5
#: Resident memory may grow this much (MiB) from the first quarter of the run to its end.
RSS_GROWTH_MB = 64


def _near_limit(n: int, size: int) -> faults.Msg:
    """A valid `page_view` of exactly `size` bytes, nearly all of it a property the contract
    does not name (kept on the way through, bounded in the state)."""
    customer = f"C-NEAR-{n}"
    event = {
        "event_id": f"near-{n}",
        "type": "page_view",
        "occurred_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "identity": {"customer_id": customer},
        "properties": {"url": "/", "note": ""},
    }
    event["properties"]["note"] = "x" * (size - len(orjson.dumps(event)))  # type: ignore[index]
    value = orjson.dumps(event)
    assert len(value) == size
    return (t.WEB, customer.encode(), value)


def _total(text: str, name: str) -> int:
    return int(sum(metric_values(text, name).values()))


def test_malformed_messages_are_dead_lettered_with_their_kind_and_nothing_else_changes(
    kafka: ApacheKafka, traffic: faults.Traffic, baseline: faults.Outputs, tmp_path: Path
) -> None:
    began = time.monotonic()
    bad = malformed.generate(
        faults.size(), max_bytes=MAX_EVENT_BYTES, wire_bytes=WIRE_BYTES, huge_every=HUGE_EVERY
    )
    generated_s = time.monotonic() - began
    good = traffic.subset(10, 3)
    mixed = faults.Traffic(people=good.people)
    step = max(1, len(bad) // max(1, len(good.messages)))
    valid = iter(range(len(good.messages)))
    near = iter(enumerate(NEAR_LIMIT))
    near_step = max(1, len(bad) // (len(NEAR_LIMIT) + 1))
    for n, (topic, key, value, kind) in enumerate(bad):
        mixed.add((topic, key, value), -1, None, kind)
        if n % near_step == near_step - 1 and (big := next(near, None)) is not None:
            mixed.add(_near_limit(*big), -1, f"near-{big[0]}")
        if n % step == 0 and (i := next(valid, None)) is not None:
            mixed.add(good.messages[i], good.owner[i], good.event_ids.get(i), good.invalid.get(i))
    for i in valid:
        mixed.add(good.messages[i], good.owner[i], good.event_ids.get(i), good.invalid.get(i))
    for big in near:
        mixed.add(_near_limit(*big), -1, f"near-{big[0]}")
    size_mb = sum(len(v or b"") for _, _, v in mixed.messages) / 1e6

    worker = WorkerProcess(
        kafka.bootstrap, tmp_path / "w", TOUCHPOINT_MAX_EVENT_BYTES=str(MAX_EVENT_BYTES)
    )
    rss: list[float] = []
    try:
        faults.started(worker)
        assert worker.proc is not None
        pid = worker.proc.pid
        started = time.monotonic()
        publisher = faults.Publisher(
            kafka.bootstrap, mixed.messages, spread_s=len(mixed.messages) / 1500, chunks=40
        ).start()
        while not publisher.done or faults.lag(kafka.bootstrap) > 0:
            assert worker.proc.poll() is None, f"the worker exited:\n{worker.log_tail()}"
            rss.append(faults.rss_mb(pid))
            time.sleep(1.0)
        coords = publisher.join()
        faults.wait_settled(kafka.bootstrap, timeout_s=600)
        took = time.monotonic() - started
        rss.append(faults.rss_mb(pid))
        text = worker.metrics()
        assert worker.proc.pid == pid
        assert worker.proc.poll() is None
        got = asyncio.run(faults.read_outputs(kafka.bootstrap))
    finally:
        worker.stop()
    log = worker.log_path.read_text(errors="replace")

    kinds = malformed.kinds(bad)
    distinct = len({v for _, _, v, _ in bad})
    quarter = max(rss[: max(1, len(rss) // 4)])
    faults.report(
        f"malformed: {len(bad)} bad messages ({distinct} distinct values; {kinds}) drawn in "
        f"{generated_s:.0f} s, with {len(good.messages)} messages of {len(good.people)} "
        f"customers and {len(NEAR_LIMIT)} valid events of {min(NEAR_LIMIT):,} to "
        f"{max(NEAR_LIMIT):,} bytes, {size_mb:.0f} MB in all; processed in {took:.0f} s "
        f"({len(mixed.messages) / took:.0f}/s); worker RSS {rss[0]:.0f} MiB at the start, "
        f"{quarter:.0f} MiB peak in the first quarter, {max(rss):.0f} MiB peak, "
        f"{rss[-1]:.0f} MiB at the end"
    )
    assert len(bad) >= faults.size()
    assert faults.accounted(mixed, coords, got) == []
    people = good.people.values()
    assert faults.differences(baseline.only(people), got.only(people)) == []
    # Each near-limit event made its person, whose state keeps a bounded part of it.
    near = {f"C-NEAR-{n}" for n in range(len(NEAR_LIMIT))}
    assert near <= set(got.states)
    assert all(len(orjson.dumps(got.states[p])) < 16_384 for p in near)
    # One worker that never restarted: its counters cover the whole run, each message once.
    assert _total(text, "touchpoint_messages_consumed_total") == len(mixed.messages)
    assert _total(text, "touchpoint_deadletters_total") == len(mixed.invalid)
    assert _total(text, "touchpoint_processing_errors_total") == 0
    assert "Traceback" not in log
    assert max(rss) - quarter <= RSS_GROWTH_MB, rss
