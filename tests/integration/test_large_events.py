"""Valid events near the broker's message limit are processed, and the worker keeps running.

On Apache Kafka with its default `message.max.bytes` (about 1 MB), a valid event of just under
1 MiB, or a `cart_add` carrying 600 KB, once made the worker exit again and again: what it
derived from the event (the re-keyed internal message, the person's state) did not fit.
Everything derived must fit; what the state keeps of an event is bounded, and an event the
product cannot carry is dead-lettered at ingest with the limit named.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from processor import topics as t
from tests.support.kafka import produce, read_json
from tests.support.worker import WorkerProcess, eventually, metric_values

pytestmark = pytest.mark.broker

#: Just under the broker's default limit, as the audit sent it.
NEAR_LIMIT = 1_048_480


def _event(eid: str, typ: str, customer: str, size: int | None = None, **props: object) -> bytes:
    at = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    value = {
        "event_id": eid,
        "type": typ,
        "occurred_at": at,
        "identity": {"customer_id": customer},
        "properties": {**props, "note": ""},
    }
    raw = orjson.dumps(value)
    if size is not None:
        # An extra property the contract does not name, filled up to `size` bytes.
        value["properties"]["note"] = "x" * (size - len(raw))
        raw = orjson.dumps(value)
        assert len(raw) == size
    return raw


def _total(worker: WorkerProcess, name: str) -> float:
    return sum(metric_values(worker.metrics(), name).values())


def test_events_near_the_message_limit_are_processed_without_stopping_the_worker(
    topics_ready: str, tmp_path: Path
) -> None:
    messages = [
        (t.WEB, b"C-big", _event("big-1", "page_view", "C-big", size=NEAR_LIMIT)),
        (t.WEB, b"C-cart", _event("cart-1", "cart_add", "C-cart", size=600_000, product_id="P-1")),
        # A product id the state would keep (cart, reminder, action): over the contract's
        # 256 characters, so refused at ingest, with the limit in the reason.
        (t.WEB, b"C-long", _event("long-1", "cart_add", "C-long", product_id="P" * 600_000)),
    ]
    # Behind each, on the same partition, an ordinary event of the same person.
    messages += [
        (t.WEB, key, _event(f"after-{key.decode()}", "login", key.decode()))
        for key in (b"C-big", b"C-cart", b"C-long")
    ]
    with WorkerProcess(topics_ready, tmp_path) as worker:
        proc = worker.proc
        asyncio.run(produce(topics_ready, messages))
        eventually("the events were not all processed", lambda: None if _total(
            worker, "touchpoint_events_processed_total") >= 5 else "not yet", 90)  # fmt: skip
        assert proc is not None
        assert proc.poll() is None, worker.log_tail()
        assert _total(worker, "touchpoint_events_processed_total") == 5
        assert _total(worker, "touchpoint_processing_errors_total") == 0
        letters = asyncio.run(read_json(topics_ready, t.DEADLETTER, expect=1, timeout_s=30))
        transitions = asyncio.run(read_json(topics_ready, t.TRANSITIONS, expect=3, timeout_s=30))
    assert [(d["error"], d["raw_size"]) for d in letters] == [  # type: ignore[index]
        (
            {
                "kind": "validation",
                "message": "properties.product_id: String should have at most 256 characters",
                "fields": ["properties.product_id"],
            },
            len(messages[2][2]),
        )
    ]
    assert sorted((tr["customer_id"], tr["to_stage"]) for tr in transitions) == [
        ("C-big", "awareness"),
        ("C-cart", "awareness"),
        ("C-cart", "consideration"),
        ("C-long", "awareness"),
    ]
