"""The simulator's personas on a real worker: every one ends where JOURNEY.md says, exactly.

Time: the simulator runs 86400x (a simulated day per wall second), and the worker runs the
shipped journey compressed by the same factor (`touchpoint simulate --write-journey`): a 1 h
wait lasts 42 ms, 3 d last 3 s, the 90 d lapse 90 s. The lapsers start first (phase 1); the
other personas 84 simulated days later (phase 2), so that the lapsers' winback mails (day 90
and 104) are out before the others reach their own 30-day moves (day 114 and later). The
worker is stopped at day 108.5, between the two, and its outputs are then read in full.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from processor import topics as t
from processor.settings import DEFAULT_JOURNEY_FILE
from processor.simulate.compress import write_compressed
from processor.simulate.generator import SimConfig, Stats, cast, generate, timeline
from processor.simulate.invalid import KINDS
from processor.simulate.personas import PERSONAS
from tests.support.kafka import produce, read_json
from tests.support.worker import WorkerProcess, metric_values

pytestmark = pytest.mark.broker

COMPRESSION = 86400.0  # one simulated day per wall second
MAX_EVENT_BYTES = 4096
PHASE_2_AT_S = 84.0  # wall seconds (= simulated days) after phase 1 starts
STOP_AT_S = 108.5
LAPSERS = {"lapser": 1}
OTHERS = {name: 1 for name in PERSONAS if name != "lapser"}
WARM_UP = 64  # customers, to touch every partition once
SPREAD_DAYS = "0.05"  # first touchpoints within 72 simulated minutes
# Invalid messages and upstream retries (duplicates) are interleaved with the personas: they must
# change nothing of what the personas get.
FAULTS = {"invalid_fraction": 0.1, "duplicate_fraction": 0.2}

# What JOURNEY.md says each persona goes through, in order: (from, to, trigger type)
# and the actions' templates (a multiset).
EXPECTED: dict[str, tuple[list[tuple[str | None, str, str]], Counter[str]]] = {
    "lapser": (
        [(None, "awareness", "signup"), ("awareness", "consideration", "product_view"),
         ("consideration", "purchase", "order_placed"), ("purchase", "retention", "timer"),
         ("retention", "lapsed", "timer")],
        Counter(["welcome", "order_welcome", "onboarding_tips", "review_request", "winback",
                 "winback_last_chance"]),
    ),
    "cart_abandoner": (
        [(None, "awareness", "page_view"), ("awareness", "consideration", "product_view"),
         ("consideration", "purchase", "order_placed")],
        Counter(["welcome", "cart_reminder", "order_welcome", "onboarding_tips",
                 "review_request"]),
    ),
    "loyal_buyer": (
        [(None, "awareness", "signup"), ("awareness", "consideration", "product_view"),
         ("consideration", "purchase", "order_placed"), ("purchase", "retention", "order_placed")],
        Counter(["welcome", "order_welcome", "onboarding_tips", "review_request",
                 "review_request", "review_request", "loyalty"]),
    ),
    "promoter": (
        [(None, "awareness", "page_view"), ("awareness", "consideration", "product_view"),
         ("consideration", "purchase", "order_placed"),
         ("purchase", "advocacy", "survey_response")],
        Counter(["welcome", "order_welcome", "onboarding_tips", "survey_thanks",
                 "referral_invite", "review_request"]),
    ),
    # No email opt-in: only the transactional order_welcome and the CRM actions go out.
    "detractor": (
        [(None, "awareness", "page_view"), ("awareness", "consideration", "product_view"),
         ("consideration", "purchase", "order_placed")],
        Counter(["order_welcome", "survey_thanks", "detractor_followup", "return_followup"]),
    ),
    "newsletter_dropout": (
        [(None, "awareness", "newsletter_subscribe")],
        Counter(["welcome", "reengagement", "email_inactive"]),
    ),
}  # fmt: skip


def _config(seed: int, mix: dict[str, int], **more: Any) -> SimConfig:
    return SimConfig(
        start=datetime.now(UTC),
        customers=sum(mix.values()) * 2,
        seed=seed,
        compression=COMPRESSION,
        spread_s=float(SPREAD_DAYS) * 86400.0,
        max_event_bytes=MAX_EVENT_BYTES,
        mix=mix,
        **more,
    )


def _simulate(bootstrap: str, seed: int, mix: dict[str, int], log: Path) -> subprocess.Popen[bytes]:
    personas = ",".join(mix)
    args = ["--seed", str(seed), "--customers", str(sum(mix.values()) * 2), "--personas", personas,
            "--time-compression", f"{COMPRESSION:g}", "--spread-days", SPREAD_DAYS,
            "--invalid-fraction", str(FAULTS["invalid_fraction"]),
            "--duplicate-fraction", str(FAULTS["duplicate_fraction"]), "--quiet"]  # fmt: skip
    env = {**os.environ, "TOUCHPOINT_KAFKA_BOOTSTRAP": bootstrap,
           "TOUCHPOINT_MAX_EVENT_BYTES": str(MAX_EVENT_BYTES)}  # fmt: skip
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "processor.cli", "simulate", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _by_customer(messages: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for m in messages:
        out[str(m["customer_id"])].append(m)
    return out


def _key_of(persona: str, customer_id: str, email: str) -> str:
    # Without a customer_id a person is keyed by their email (README, "Identity keys").
    return f"email:{email}" if persona == "newsletter_dropout" else customer_id


def test_every_persona_reaches_its_stage_and_actions(topics_ready: str, tmp_path: Path) -> None:
    journey = write_compressed(DEFAULT_JOURNEY_FILE, COMPRESSION, tmp_path / "journey.yaml")
    env = {
        "TOUCHPOINT_JOURNEY_FILE": str(journey),
        "TOUCHPOINT_TIMER_TICK_S": "0.1",
        # A timer request not processed is re-sent after this; the default 30 s would be 30
        # simulated days here.
        "TOUCHPOINT_TIMER_RESEND_S": "1",
        "TOUCHPOINT_MAX_EVENT_BYTES": str(MAX_EVENT_BYTES),
    }
    phases = [(11, LAPSERS), (12, OTHERS)]
    with WorkerProcess(topics_ready, tmp_path / "w", **env) as worker:
        _warm_up(topics_ready, worker)
        t0 = time.monotonic()
        first = _simulate(topics_ready, *phases[0], tmp_path / "sim1.log")
        time.sleep(PHASE_2_AT_S - (time.monotonic() - t0))
        second = _simulate(topics_ready, *phases[1], tmp_path / "sim2.log")
        assert first.wait(30) == 0, (tmp_path / "sim1.log").read_text()
        assert second.wait(60) == 0, (tmp_path / "sim2.log").read_text()
        time.sleep(max(0.0, STOP_AT_S - (time.monotonic() - t0)))
        text = worker.metrics()
        worker.stop()
    assert time.monotonic() - t0 < PHASE_2_AT_S + 30, "stopped too late: 30-day moves may show"

    transitions = _by_customer(
        asyncio.run(read_json(topics_ready, t.TRANSITIONS, expect=10**9, timeout_s=3))
    )
    actions = _by_customer(
        asyncio.run(read_json(topics_ready, t.ACTIONS, expect=10**9, timeout_s=3))
    )
    letters = asyncio.run(read_json(topics_ready, t.DEADLETTER, expect=10**9, timeout_s=3))

    stats = Stats()
    for seed, mix in phases:
        config = _config(seed, mix, **FAULTS)
        for _ in generate(config, stats):
            pass
        for c in cast(config):
            if c.persona == "store_researcher":
                continue  # below, and in the skipped test
            key = _key_of(c.persona, c.who.customer_id, c.who.email)
            moves, templates = EXPECTED[c.persona]
            got = [
                (tr["from_stage"], tr["to_stage"], tr["trigger_type"]) for tr in transitions[key]
            ]
            assert got == moves, (c.persona, key)
            held = {
                k: v
                for k, v in metric_values(text, "touchpoint_actions_suppressed_total").items()
                if v
            }
            assert Counter(a["template"] for a in actions[key]) == templates, (c.persona, held)
        _store_researchers_without_linking(config, transitions, actions)

    # Invalid messages and duplicates change nothing (above); each invalid one is dead-lettered
    # once with its kind, and duplicates are counted.
    assert sum(stats.invalid.values()) > 0
    assert Counter(str(lt["error"]["kind"]) for lt in letters) == stats.invalid
    assert (
        sum(metric_values(text, "touchpoint_duplicate_events_total").values()) == stats.duplicates
    )
    assert stats.duplicates > 0
    consumed = sum(metric_values(text, "touchpoint_messages_consumed_total").values())
    assert consumed == stats.total + WARM_UP


def _store_researchers_without_linking(
    config: SimConfig,
    transitions: dict[str, list[dict[str, Any]]],
    actions: dict[str, list[dict[str, Any]]],
) -> None:
    """What holds for the store researcher whether or not her loyalty card is linked yet."""
    events = {eid: beat for _, eid, beat in timeline(config, cast(config))}
    every_transition = [tr for trs in transitions.values() for tr in trs]
    every_action = [a for acts in actions.values() for a in acts]
    for c in cast(config):
        if c.persona != "store_researcher":
            continue
        cid = c.who.customer_id
        # Her loyalty_signup (store topic) comes 25 simulated minutes, 17 ms, after her first
        # page view (web topic): the worker may take it first, so the triggers may differ.
        got = [(tr["from_stage"], tr["to_stage"]) for tr in transitions[cid]]
        assert got[:2] == [(None, "awareness"), ("awareness", "consideration")]
        # Browsed three products of one category online and bought nothing there within a day.
        templates = Counter(a["template"] for a in actions[cid])
        assert templates["viewed_products"] == 1
        assert templates["interest_tag"] == 1
        pos = next(e for e, b in events.items() if e.startswith(cid) and b.type == "pos_purchase")
        bought = [tr for tr in every_transition if tr["trigger_event_id"] == pos]
        assert [tr["to_stage"] for tr in bought] == ["purchase"]
        welcome = [a["template"] for a in every_action if a["trigger_event_id"] == pos]
        assert welcome == ["order_welcome"]  # transactional: no opt-in needed


def test_store_researcher_is_one_person_across_web_and_store(
    topics_ready: str, tmp_path: Path
) -> None:
    journey = write_compressed(DEFAULT_JOURNEY_FILE, COMPRESSION, tmp_path / "journey.yaml")
    env = {"TOUCHPOINT_JOURNEY_FILE": str(journey), "TOUCHPOINT_TIMER_TICK_S": "0.1"}
    mix = {"store_researcher": 1}
    with WorkerProcess(topics_ready, tmp_path / "w", **env) as worker:
        _warm_up(topics_ready, worker)
        sim = _simulate(topics_ready, 13, mix, tmp_path / "sim.log")
        assert sim.wait(30) == 0, (tmp_path / "sim.log").read_text()
        # The POS purchase is the last event and takes the identity-routes hop: wait for it.
        purchase = (("from_stage", "consideration"), ("to_stage", "purchase"))
        deadline = time.monotonic() + 60
        while not metric_values(worker.metrics(), "touchpoint_transitions_total").get(purchase):
            assert time.monotonic() < deadline, worker.log_tail()
            time.sleep(0.3)
        # Counted when sent; read once Kafka has it (the worker's unit delivers it shortly).
        config = _config(13, mix)
        while True:
            transitions = _by_customer(
                asyncio.run(read_json(topics_ready, t.TRANSITIONS, expect=10**9, timeout_s=3))
            )
            if all(
                any(tr["to_stage"] == "purchase" for tr in transitions.get(c.who.customer_id, []))
                for c in cast(config)
            ):
                break
            assert time.monotonic() < deadline, worker.log_tail()
        # Every purchase is on Kafka; its conversion is counted in the same step as its send,
        # moments later. (Read before, the metric missed the second customer's.)
        while True:
            text = worker.metrics()
            counted = metric_values(text, "touchpoint_cross_channel_conversions_total")
            if sum(counted.values()) >= len(cast(config)) or time.monotonic() > deadline:
                break
            time.sleep(0.3)
    for c in cast(config):
        cid = c.who.customer_id
        # The first two triggers may differ (web and store topics race, see above).
        got = [(tr["from_stage"], tr["to_stage"]) for tr in transitions[cid]]
        assert got == [
            (None, "awareness"),
            ("awareness", "consideration"),
            ("consideration", "purchase"),
        ]
        assert transitions[cid][-1]["trigger_type"] == "pos_purchase"
        # The loyalty card names the same person: no profile of its own.
        assert f"loyalty:{c.who.loyalty_id}" not in transitions
        assert "web" in transitions[cid][-1]["channels_before_conversion"]
    conversions = metric_values(text, "touchpoint_cross_channel_conversions_total")
    assert sum(conversions.values()) == len(cast(config))


def _warm_up(bootstrap: str, worker: WorkerProcess) -> None:
    """Events through every partition first: a fresh worker's first message on a partition
    takes about a second (metadata, first fetch), a simulated day at 86400x."""
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    messages = [
        (t.WEB, f"C-warm-{i}".encode(), orjson.dumps({
            "event_id": f"warm-{i}", "type": "page_view", "occurred_at": now,
            "identity": {"customer_id": f"C-warm-{i}"},
        }))
        for i in range(WARM_UP)
    ]  # fmt: skip
    asyncio.run(produce(bootstrap, messages))
    deadline = time.monotonic() + 30
    while sum(metric_values(worker.metrics(), "touchpoint_transitions_total").values()) < WARM_UP:
        assert time.monotonic() < deadline, worker.log_tail()
        time.sleep(0.1)


def _touchpoint(bootstrap: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TOUCHPOINT_KAFKA_BOOTSTRAP": bootstrap,
           "TOUCHPOINT_MAX_EVENT_BYTES": str(MAX_EVENT_BYTES)}  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "processor.cli", *args],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def _wait_dead(worker: WorkerProcess, n: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while sum(metric_values(worker.metrics(), "touchpoint_deadletters_total").values()) < n:
        assert time.monotonic() < deadline, worker.log_tail()
        time.sleep(0.3)


def test_tail_filters_and_deadletter_replay_once_each(topics_ready: str, tmp_path: Path) -> None:
    start = datetime.now(UTC).replace(microsecond=0)
    config = SimConfig(start=start, customers=40, seed=21, compression=1e7,
                       invalid_fraction=0.3, max_event_bytes=MAX_EVENT_BYTES)  # fmt: skip
    stats = Stats()
    for _ in generate(config, stats):
        pass
    env = {"TOUCHPOINT_MAX_EVENT_BYTES": str(MAX_EVENT_BYTES)}
    with WorkerProcess(topics_ready, tmp_path / "w", **env) as worker:
        sim = _touchpoint(topics_ready, "simulate", "--customers", "40", "--seed", "21",
                          "--time-compression", "1e7", "--invalid-fraction", "0.3",
                          "--start", start.isoformat())  # fmt: skip
        assert sim.returncode == 0, sim.stderr
        # One more, bigger than the 64 KiB a dead letter keeps: it cannot be replayed.
        huge = b'{"type": "page_view", "pad": "' + b"x" * 70_000 + b'"}'
        asyncio.run(produce(topics_ready, [(t.WEB, b"huge", huge)]))
        _wait_dead(worker, sum(stats.invalid.values()) + 1)
        letters = asyncio.run(read_json(topics_ready, t.DEADLETTER, expect=10**9, timeout_s=2))
    # Every invalid message dead-lettered once, with its kind, and nothing else.
    assert set(stats.invalid) == set(KINDS)
    assert Counter(str(lt["error"]["kind"]) for lt in letters) == stats.invalid + Counter(
        {"too_large": 1}
    )
    # The worker is stopped: replayed messages stay on their topics, unprocessed.

    listed = _touchpoint(topics_ready, "tail", "deadletter", "--from-beginning",
                         "--idle-timeout", "3", "--kind", "validation")  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert len(listed.stdout.splitlines()) == stats.invalid["validation"]
    pretty = _touchpoint(topics_ready, "tail", "deadletter", "--from-beginning", "--idle-timeout",
                         "3", "--kind", "unknown_type", "--max", "1", "--pretty")  # fmt: skip
    assert '\n  "error": {\n    "kind": "unknown_type"' in pretty.stdout

    first = _touchpoint(topics_ready, "deadletter", "replay", "--kind", "validation",
                        "--kind", "decode", "--kind", "too_large")  # fmt: skip
    assert first.returncode == 1, first.stderr  # the truncated one is refused
    assert f"validation: replayed {stats.invalid['validation']}, refused 0" in first.stdout, (
        listed.stdout,
        first.stdout,
    )
    assert f"decode: replayed {stats.invalid['decode']}, refused 0" in first.stdout
    assert f"too_large: replayed {stats.invalid['too_large']}, refused 1" in first.stdout
    assert "only a prefix of the value was kept" in first.stdout
    again = _touchpoint(topics_ready, "deadletter", "replay", "--kind", "validation",
                        "--kind", "decode")  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "validation: replayed 0, refused 0" in again.stdout
    assert "decode: replayed 0, refused 0" in again.stdout

    # The replayed values are on their source topics once more, byte for byte (base64 decoded).
    sent = Counter(
        (m.topic, m.value)
        for m in generate(config)
        if m.value and not m.value.startswith(b'{"event_id":"C')  # the invalid ones
    )
    replayed_kinds = {"validation", "decode", "too_large"}
    on_topics: Counter[tuple[str, bytes]] = Counter()
    for topic in t.INBOUND:
        for value in asyncio.run(_raw_values(topics_ready, topic)):
            on_topics[(topic, value)] += 1
    for (topic, value), n in sent.items():
        kind = _kind_of(value, topic)
        assert on_topics[(topic, value)] == n * (2 if kind in replayed_kinds else 1), kind


def _kind_of(value: bytes, topic: str) -> str | None:
    from processor.decode import Rejection, decode_touchpoint
    from processor.events import Channel

    out = decode_touchpoint(
        value, Channel(topic.removeprefix("touchpoints.")), datetime.now(UTC),
        max_bytes=MAX_EVENT_BYTES,
    )  # fmt: skip
    return out.kind.value if isinstance(out, Rejection) else None


async def _raw_values(bootstrap: str, topic: str) -> list[bytes]:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False)  # fmt: skip
    await consumer.start()
    out: list[bytes] = []
    try:
        while batch := await consumer.getmany(timeout_ms=1500):
            out.extend(r.value for records in batch.values() for r in records)
    finally:
        await consumer.stop()
    return out
