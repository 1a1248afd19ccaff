"""End to end on the embedded broker: inbound topics → worker → outputs, with exact counts."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import pytest

from processor import topics as t
from tests.support.kafka import produce, read_json
from tests.support.traffic import generate
from tests.support.worker import WorkerProcess, metric_values

pytestmark = pytest.mark.broker

MAX_EVENT_BYTES = 4096


def _total(text: str, name: str) -> float:
    return sum(metric_values(text, name).values())


def _wait_until_done(worker: WorkerProcess, expected_total: int, timeout_s: float) -> str:
    """Poll /metrics until every message was processed or dead-lettered."""
    deadline = time.monotonic() + timeout_s
    text = ""
    while time.monotonic() < deadline:
        text = worker.metrics()
        done = _total(text, "touchpoint_events_processed_total") + _total(
            text, "touchpoint_deadletters_total"
        )
        if done >= expected_total:
            return text
        time.sleep(0.5)
    raise AssertionError(f"not done in {timeout_s} s:\n{worker.log_tail()}")


def test_inbound_to_outputs_exact(topics_ready: str, tmp_path: Path) -> None:
    exp = generate(240, max_event_bytes=MAX_EVENT_BYTES)
    messages = exp.messages
    assert len(messages) >= 1000
    kinds = Counter(kind for _, kind in exp.invalid)
    assert set(kinds) == {
        "decode",
        "validation",
        "unknown_type",
        "too_large",
        "future_timestamp",
        "channel_mismatch",
    }

    with WorkerProcess(
        topics_ready, tmp_path, TOUCHPOINT_MAX_EVENT_BYTES=str(MAX_EVENT_BYTES)
    ) as worker:
        asyncio.run(produce(topics_ready, messages))
        text = _wait_until_done(worker, len(messages), timeout_s=120)

        transitions = asyncio.run(
            read_json(
                topics_ready, t.TRANSITIONS, expect=sum(exp.transitions.values()), timeout_s=30
            )
        )
        actions = asyncio.run(
            read_json(topics_ready, t.ACTIONS, expect=len(exp.actions), timeout_s=30)
        )
        letters = asyncio.run(
            read_json(topics_ready, t.DEADLETTER, expect=len(exp.invalid), timeout_s=30)
        )
        text = worker.metrics()

    got_transitions = Counter(
        (
            tr["customer_id"],
            tr["from_stage"],
            tr["to_stage"],
            tr["trigger_event_id"],
            tuple(tr["channels_before_conversion"]),
        )  # type: ignore[arg-type]
        for tr in transitions
    )
    assert got_transitions == exp.transitions
    got_actions = {
        (a["action_id"], a["customer_id"], a["template"], a["trigger_event_id"]) for a in actions
    }
    assert len(actions) == len(exp.actions)
    assert got_actions == exp.actions
    assert all(a["action"] == "send_email" and a["channel"] == "email" for a in actions)

    # Every invalid message is dead-lettered exactly once, with the right kind and its source.
    assert len(letters) == len(exp.invalid)
    got_kinds = Counter(
        (letter["source"]["topic"], letter["source"]["key"], letter["error"]["kind"])  # type: ignore[index]
        for letter in letters
    )
    want_kinds = Counter((m[0], m[1].decode() if m[1] else None, k) for m, k in exp.invalid)
    assert got_kinds == want_kinds
    coordinates = {
        (lt["source"]["topic"], lt["source"]["partition"], lt["source"]["offset"])  # type: ignore[index]
        for lt in letters
    }
    assert len(coordinates) == len(letters)

    # received = processed + dead-lettered, by the worker's own counters.
    consumed = _total(text, "touchpoint_messages_consumed_total")
    received = _total(text, "touchpoint_events_received_total")
    dead = _total(text, "touchpoint_deadletters_total")
    assert consumed == len(messages)
    assert received == len(exp.valid)
    assert dead == len(exp.invalid)
    assert received + dead == consumed
    processed = metric_values(text, "touchpoint_events_processed_total")
    assert {dict(k)["channel"]: v for k, v in processed.items()} == {
        "web": exp.processed["web"],
        "email": exp.processed["email"],
        "store": exp.processed["store"],
    }
    assert _total(text, "touchpoint_duplicate_events_total") == exp.duplicates
    suppressed = metric_values(text, "touchpoint_actions_suppressed_total")
    assert suppressed == {(("reason", "consent"), ("rule", "welcome")): exp.suppressed_consent}
    assert _total(text, "touchpoint_transitions_total") == sum(exp.transitions.values())
    by_template = Counter(template for _, _, template, _ in exp.actions)
    assert set(by_template) == {"welcome", "order_welcome"}
    emitted = metric_values(text, "touchpoint_actions_total")
    assert {k: v for k, v in emitted.items() if v} == {
        (("action", "send_email"), ("template", template)): n for template, n in by_template.items()
    }
