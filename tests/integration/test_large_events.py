"""Valid events near the broker's message limit are processed, and the worker keeps running.

On Apache Kafka with its default `message.max.bytes` (about 1 MB), a valid event of just under
1 MiB, or a `cart_add` carrying 600 KB, once made the worker exit again and again: what it
derived from the event (the re-keyed internal message, the person's state) did not fit.
Everything derived must fit; what the state keeps of an event is bounded, and an event the
product cannot carry is dead-lettered at ingest with the limit named.
"""

from __future__ import annotations

import asyncio
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from processor import topics as t
from processor.settings import DEFAULT_JOURNEY_FILE
from tests.support.kafka import produce, read_changelog, read_json
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


def _processed_exactly(
    worker: WorkerProcess, proc: subprocess.Popen[bytes] | None, count: int, timeout_s: float
) -> None:
    """Wait until `count` events were processed; the worker the same process, no error."""
    name = "touchpoint_events_processed_total"
    eventually(f"{count} events were not processed", lambda: None if _total(
        worker, name) >= count else "not yet", timeout_s)  # fmt: skip
    assert proc is not None
    assert proc.poll() is None, worker.log_tail()
    assert _total(worker, name) == count
    assert _total(worker, "touchpoint_processing_errors_total") == 0


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
        _processed_exactly(worker, proc, 5, timeout_s=90)
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


def test_an_event_whose_outputs_cannot_fit_is_dead_lettered_and_the_worker_goes_on(
    topics_ready: str, tmp_path: Path
) -> None:
    """A journey file may copy any property of the trigger event into an action (`{event.x}`),
    and a wait keeps those properties in the person's state until it fires. A near-limit event
    whose property a cart reminder copies would make a state record (and later an action)
    larger than its topic takes: Kafka refused it and the worker stopped, again and again. The
    event is dead-lettered as `too_large`, naming what would not fit, nothing of it is kept, and
    the same person's next event is processed."""
    text = DEFAULT_JOURNEY_FILE.read_text(encoding="utf-8")
    anchor = '      currency: "{cart.currency}"\n'
    assert text.count(anchor) == 1
    journey = tmp_path / "lifecycle-with-note.yaml"
    journey.write_text(text.replace(anchor, anchor + '      note: "{event.note}"\n'), "utf-8")
    big = _event("cart-big", "cart_add", "C-note", size=NEAR_LIMIT, product_id="P-1")
    messages = [
        (t.WEB, b"C-note", _event("signup-1", "signup", "C-note", consent={"email": True})),
        (t.WEB, b"C-note", big),
        (t.WEB, b"C-note", _event("cart-small", "cart_add", "C-note", product_id="P-2")),
    ]
    with WorkerProcess(topics_ready, tmp_path, TOUCHPOINT_JOURNEY_FILE=str(journey)) as worker:
        proc = worker.proc
        asyncio.run(produce(topics_ready, messages))
        letters = asyncio.run(read_json(topics_ready, t.DEADLETTER, expect=1, timeout_s=60))
        _processed_exactly(worker, proc, 2, timeout_s=60)  # the two around it

        def stored() -> dict[str, Any]:
            raw = asyncio.run(read_changelog(topics_ready, t.JOURNEY_CHANGELOG)).get(b"C-note")
            return {} if raw is None else dict(orjson.loads(raw))

        def caught_up() -> str | None:
            return None if "cart-small" in stored().get("seen", []) else "not yet"

        eventually("the person's state was not stored", caught_up, 30)
        state = stored()
    assert [(d["error"]["kind"], d["source"]["offset"]) for d in letters] == [  # type: ignore[index]
        ("too_large", 1)
    ]
    reason = str(letters[0]["error"]["message"])  # type: ignore[index]
    assert "journey" in reason
    assert "bytes" in reason
    assert "cart-big" not in state["seen"]
    assert {"signup-1", "cart-small"} <= set(state["seen"])
