"""Batching changes nothing but speed: the same event file gives the same actions, transitions
and dead letters processed one message at a time (TOUCHPOINT_BATCH_MAX=1) and in batches of up
to 500 (the default)."""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from processor import topics as t
from processor.bench.stream import Restamp
from processor.settings import DEFAULT_JOURNEY_FILE, Settings
from processor.simulate import invalid
from processor.simulate.compress import write_compressed
from processor.simulate.generator import SimConfig, Stats, generate
from tests.conftest import fresh_broker
from tests.support.kafka import produce, read_json
from tests.support.worker import WorkerProcess, metric_values

pytestmark = pytest.mark.broker

MAX_EVENT_BYTES = 4096
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
#: A simulated event's id is its person's customer id and a sequence number.
_EVENT_ID = re.compile(rb'"event_id":"(C[0-9]+-[0-9]+)-[0-9]+"')

Msg = tuple[str, bytes | None, bytes | None]


def _event_file() -> tuple[list[Msg], Stats]:
    """A fixed simulated stream (every persona, duplicates, every invalid kind), its events
    moved to just before now so that no wait of the journey comes due during the test."""
    stats = Stats()
    config = SimConfig(
        start=EPOCH, customers=240, seed=11, compression=1440.0, spread_s=3600.0,
        invalid_fraction=0.03, duplicate_fraction=0.05, invalid_kinds=invalid.KINDS,
        max_event_bytes=MAX_EVENT_BYTES,
    )  # fmt: skip
    messages = list(generate(config, stats))
    restamp = Restamp(messages[-1].send_at, datetime.now(UTC))
    return [(m.topic, m.key, restamp(m.value)) for m in messages], stats


def _waves(messages: list[Msg]) -> list[list[Msg]]:
    """The messages in order, dealt into waves in which every simulated person has at most one
    event (invalid messages all go first).

    The processor keeps order within an inbound partition only: two events of one person on
    different topics may be processed in either order, whatever the batching, and the first of
    them starts the person (e.g. `newsletter_subscribe` on touchpoints.web and `email_delivered`
    on touchpoints.email). Published wave after wave, each person's events are processed in the
    file's order in both runs, so that any difference is the batching's.
    """
    waves: list[list[Msg]] = []
    seen: Counter[str] = Counter()
    for msg in messages:
        m = _EVENT_ID.search(msg[2] or b"")
        person = m.group(1).decode() if m else None
        n = 0
        if person is not None:
            n = seen[person] = seen[person] + 1
        while len(waves) <= n:
            waves.append([])
        waves[n].append(msg)
    return waves


def _total(text: str, name: str) -> float:
    return sum(metric_values(text, name).values())


def _without_processing_time(record: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """The record without the moments of processing, the only thing allowed to differ: an
    action's `created_at` and `send_after` (no quiet hours here), a merge's `at`."""
    drop = {"created_at", "send_after"}
    if record.get("trigger_type") == "identity_merge":
        drop.add("at")
    return tuple(sorted((k, str(v)) for k, v in record.items() if k not in drop))


def _run(tmp: Path, messages: list[Any], journey: Path, batch_max: int) -> dict[str, Any]:
    with fresh_broker(tmp / "broker", topics=True) as bootstrap:
        env = {
            "TOUCHPOINT_MAX_EVENT_BYTES": str(MAX_EVENT_BYTES),
            "TOUCHPOINT_JOURNEY_FILE": str(journey),
            "TOUCHPOINT_BATCH_MAX": str(batch_max),
        }
        with WorkerProcess(bootstrap, tmp / "worker", **env) as worker:
            published = 0
            for wave in _waves(messages):
                asyncio.run(produce(bootstrap, wave))
                published += len(wave)
                deadline = time.monotonic() + 120
                while True:
                    text = worker.metrics()
                    done = _total(text, "touchpoint_events_processed_total") + _total(
                        text, "touchpoint_deadletters_total"
                    )
                    if done >= published:
                        break
                    assert time.monotonic() < deadline, f"not done:\n{worker.log_tail()}"
                    time.sleep(0.2)
                # Let identity hand-overs (merge, absorb) that the wave caused settle too.
                time.sleep(0.5)
            text = worker.metrics()
            transitions = _total(text, "touchpoint_transitions_total")
            actions = _total(text, "touchpoint_actions_total")
            assert _total(text, "touchpoint_processing_errors_total") == 0
            got_transitions = asyncio.run(
                read_json(bootstrap, t.TRANSITIONS, expect=int(transitions), timeout_s=30)
            )
            got_actions = asyncio.run(
                read_json(bootstrap, t.ACTIONS, expect=int(actions), timeout_s=30)
            )
            letters = asyncio.run(
                read_json(bootstrap, t.DEADLETTER, expect=len(messages), timeout_s=10, settle_s=0)
            )
    return {
        "actions": Counter(_without_processing_time(a) for a in got_actions),
        "transitions": Counter(_without_processing_time(tr) for tr in got_transitions),
        "letters": Counter(
            (d["error"]["kind"], d["source"]["topic"], d["source"]["offset"]) for d in letters
        ),
    }


def test_batches_give_the_same_actions_and_transitions(tmp_path: Path) -> None:
    messages, stats = _event_file()
    assert stats.duplicates > 0
    assert len(stats.invalid) == len(invalid.KINDS)
    # The lifecycle journey at its real durations, without the two policies that follow the
    # wall clock (quiet hours, the per-day cap): the two runs happen at different moments.
    journey = write_compressed(
        Settings().journey_file or DEFAULT_JOURNEY_FILE, 1.0, tmp_path / "journey.yaml"
    )
    one = _run(tmp_path / "one", messages, journey, batch_max=1)
    batched = _run(tmp_path / "batched", messages, journey, batch_max=500)

    assert sum(one["transitions"].values()) > 500
    assert sum(one["actions"].values()) > 200
    assert batched["transitions"] == one["transitions"]
    assert batched["actions"] == one["actions"]
    assert batched["letters"] == one["letters"]
    assert sum(one["letters"].values()) == sum(stats.invalid.values())
