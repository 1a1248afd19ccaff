"""Should the product offer Faust's `processing_guarantee="exactly_once"`? Decided here: no.

The product promises at least once with deterministic action ids (the sender dedupes; see the
README's Reliability section). This test runs a worker in Faust's exactly-once mode (Kafka
transactions), started through tests/support/exactly_once/sitecustomize.py, on a twenty-first
of the baseline's customers, without any fault, and reads the outputs as a `read_committed`
consumer.

Found (Faust 0.15.3, Kafka 4.1), while ingest was a Faust agent: the mode never committed the
one-partition identity-links topic (its consumer offset stayed unset; faust-streaming#517
reports "has not committed TP at all"), so every restart read the whole retained topic again,
and while every event with two or more identifiers passed the link agent, each of them was lost.
An earlier run of this test with SIGKILLs also left other people's outputs missing minutes after
the restart. The product therefore does not offer the mode.

Since ingest reads the inbound topics outside Faust (its own consumer group, committed by its
own checkpoint after Kafka acknowledged its records, never inside a transaction), Faust's
assignment holds only the internal topics, and the mode commits identity-links too. Every
record the agents make goes through their checkpoints (stream/commit/units.py), outside Faust's
transactions, so the mode changes only how their offsets are committed; without faults the
outputs match the at-least-once run, which is what this test holds.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from processor import topics as t
from tests.brokers.apache_kafka import ApacheKafka
from tests.support import faults
from tests.support.worker import WorkerProcess

pytestmark = [pytest.mark.broker, pytest.mark.timeout(faults.timeout_s(0.25))]

EXACTLY_ONCE = Path(__file__).resolve().parents[1] / "support" / "exactly_once"


async def _committed(bootstrap: str) -> dict[str, int]:
    """The group's committed offsets, summed per topic (a topic never committed is absent)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(t.APP_ID)
    finally:
        await admin.close()
    out: dict[str, int] = {}
    for tp, meta in offsets.items():
        if meta.offset >= 0:
            out[tp.topic] = out.get(tp.topic, 0) + meta.offset
    return out


def _identities(traffic: faults.Traffic) -> dict[str, dict[str, str]]:
    """The identity of every valid event, by event id."""
    out = {}
    for i, eid in traffic.event_ids.items():
        value = traffic.messages[i][2]
        if value is not None:
            out[eid] = orjson.loads(value)["identity"]
    return out


def test_exactly_once_mode_commits_every_internal_topic_and_matches_the_baseline(
    kafka: ApacheKafka, traffic: faults.Traffic, baseline: faults.Outputs, tmp_path: Path
) -> None:
    mine = traffic.subset(21, 5)  # 21 is prime to the 4 kinds of customer: all kinds
    want = baseline.only(mine.people.values())
    identities = _identities(mine)
    linking = {eid for eid, ids in identities.items() if len(ids) > 1}
    worker = WorkerProcess(kafka.bootstrap, tmp_path / "w", PYTHONPATH=str(EXACTLY_ONCE))
    try:
        faults.started(worker)
        began = time.monotonic()
        coords = asyncio.run(faults.produce_recorded(kafka.bootstrap, mine.messages))
        # At-least-once needs about a second for these; give the mode a minute.
        deadline = began + 60
        links = 0
        while True:
            got = asyncio.run(faults.read_outputs(kafka.bootstrap, committed_only=True))
            links = len(asyncio.run(faults.read_all(kafka.bootstrap, t.IDENTITY_LINKS)))
            committed = asyncio.run(_committed(kafka.bootstrap))
            # Done when the outputs are complete and the worker committed everything else it
            # read (the customer events: every event passes them), or after the minute.
            others = faults.lag(kafka.bootstrap, (t.CUSTOMER_EVENTS,)) == 0
            if (faults.differences(want, got) == [] and others) or time.monotonic() > deadline:
                break
            time.sleep(3)
        log = worker.log_path.read_text(errors="replace")
    finally:
        worker.stop()
    sent = set(mine.event_ids.values())
    lost = sent - got.seen
    differences = faults.differences(want, got)
    faults.report(
        f"exactly_once: {len(mine.messages)} messages ({len(linking)} events linking "
        f"identifiers); after {time.monotonic() - began:.0f} s a read_committed consumer sees "
        f"{len(sent) - len(lost)} of {len(sent)} events processed and {len(got.actions)} of "
        f"{len(want.actions)} action ids; identity-links holds {links} records; committed "
        f"offsets per topic: {committed}; differences: {differences[:3]}"
    )
    assert "transactional producers" in log  # the mode really was on
    assert links > 0
    assert committed.get(t.CUSTOMER_EVENTS, 0) > 0, "nothing committed: the check means nothing"
    assert committed.get(t.IDENTITY_LINKS, 0) > 0, "identity-links is never committed again"
    assert lost == set()
    assert differences == []
    assert len(coords) == len(mine.messages)
