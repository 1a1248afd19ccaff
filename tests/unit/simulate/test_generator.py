"""The traffic generator: deterministic by seed, on its clock and rate, faults in proportion."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from processor.decode import Rejection, decode_touchpoint
from processor.events import Channel
from processor.journey.definition import load_journey
from processor.settings import DEFAULT_JOURNEY_FILE
from processor.simulate.compress import MIN_STALE_AFTER_S, UNCAPPED_PER_DAY, write_compressed
from processor.simulate.generator import SimConfig, SimMessage, Stats, cast, generate
from processor.simulate.invalid import FILE_KINDS, KINDS
from processor.simulate.personas import PERSONAS
from processor.simulate.publisher import write_lines

START = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def _run(**kw: object) -> tuple[list[SimMessage], Stats]:
    stats = Stats()
    config = SimConfig(start=START, **kw)  # type: ignore[arg-type]
    return list(generate(config, stats)), stats


def _kind(msg: SimMessage, now: datetime) -> str | None:
    """The dead-letter kind the worker's own decoder gives the message (None: valid)."""
    channel = Channel(msg.topic.removeprefix("touchpoints."))
    out = decode_touchpoint(msg.value, channel, now, max_bytes=4096)
    return out.kind.value if isinstance(out, Rejection) else None


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    a, _ = _run(customers=50, seed=7, invalid_fraction=0.1, duplicate_fraction=0.1)
    b, _ = _run(customers=50, seed=7, invalid_fraction=0.1, duplicate_fraction=0.1)
    c, _ = _run(customers=50, seed=8, invalid_fraction=0.1, duplicate_fraction=0.1)
    assert a == b
    assert a != c


def test_every_persona_plays_and_every_event_is_valid_in_time_and_order() -> None:
    msgs, stats = _run(customers=70, seed=3, compression=1440.0)
    assert {c.persona for c in cast(SimConfig(start=START, customers=70))} == set(PERSONAS)
    assert stats.valid == len(msgs)
    sends = [m.send_at for m in msgs]
    assert sends == sorted(sends)
    for m in msgs:
        event = orjson.loads(m.value)
        at = datetime.fromisoformat(event["occurred_at"].replace("Z", "+00:00"))
        # occurred_at is the moment the message is due (cut to ms): never in the future.
        due = START + timedelta(seconds=m.send_at)
        assert due - timedelta(milliseconds=1) < at <= due
        assert _kind(m, at) is None, event
        assert m.key is not None


def test_rate_limits_messages_per_second() -> None:
    msgs, _ = _run(customers=200, seed=1, compression=1e9, rate=50.0)
    gaps = [b.send_at - a.send_at for a, b in itertools.pairwise(msgs)]
    assert min(gaps) >= 1 / 50 - 1e-9
    assert msgs[-1].send_at == pytest.approx((len(msgs) - 1) / 50)


def test_events_and_duration_stop_the_run() -> None:
    assert len(_run(customers=200, events=123)[0]) == 123
    msgs, _ = _run(customers=200, compression=1440.0, duration_s=30.0)
    assert msgs
    assert max(m.send_at for m in msgs) <= 30.0


def test_fractions_of_invalid_and_duplicate_messages_and_every_dead_letter_kind() -> None:
    msgs, stats = _run(customers=2000, seed=5, invalid_fraction=0.1, duplicate_fraction=0.05)
    now = START + timedelta(days=400)
    kinds = Counter(_kind(m, now) for m in msgs)
    invalid = sum(n for k, n in kinds.items() if k is not None)
    assert set(kinds) - {None} == set(KINDS)
    assert Counter({k: n for k, n in kinds.items() if k}) == stats.invalid
    assert invalid / (stats.valid + invalid) == pytest.approx(0.1, abs=0.01)
    assert stats.duplicates / stats.valid == pytest.approx(0.05, abs=0.01)
    values = Counter(m.value for m in msgs if _kind(m, now) is None)
    assert sum(n - 1 for n in values.values()) == stats.duplicates
    assert stats.total == len(msgs)


def test_a_file_holds_every_kind_but_decode(tmp_path: Path) -> None:
    config = SimConfig(start=START, customers=300, invalid_fraction=0.2, invalid_kinds=FILE_KINDS)
    n = write_lines(tmp_path / "events.jsonl", generate(config))
    lines = (tmp_path / "events.jsonl").read_bytes().splitlines()
    assert len(lines) == n
    assert all(orjson.loads(line)["channel"] in ("web", "email", "store") for line in lines)


def test_compressed_journey_divides_every_duration(tmp_path: Path) -> None:
    path = write_compressed(DEFAULT_JOURNEY_FILE, 86400.0, tmp_path / "j.yaml")
    real, fast = load_journey(DEFAULT_JOURNEY_FILE), load_journey(path)
    # Staleness is about processing delay, which is real time: never below a minute.
    assert fast.policies.stale_after == timedelta(seconds=MIN_STALE_AFTER_S)
    cap, real_cap = fast.policies.frequency_caps, real.policies.frequency_caps
    assert cap is not None
    assert real_cap is not None
    assert cap.rolling.within * 86400 == real_cap.rolling.within
    assert cap.per_local_day == UNCAPPED_PER_DAY
    assert fast.policies.quiet_hours is None
    waits = {s.name: s.wait for s in fast.steps if s.wait}
    assert waits["abandoned_cart"] == timedelta(milliseconds=42)  # 1 h / 86400, rounded
    assert [t.after for t in fast.transitions if t.after] == [
        timedelta(seconds=30),
        timedelta(seconds=90),
    ]
