"""Should the product offer Faust's `processing_guarantee="exactly_once"`? Decided here: no.

The product promises at least once with deterministic action ids (the sender dedupes; see the
README's Reliability section). This test runs a worker in Faust's exactly-once mode (Kafka
transactions), started through tests/support/exactly_once/sitecustomize.py, on a twenty-first
of the baseline's customers, without any fault, and reads the outputs as a `read_committed`
consumer.

Found (Faust 0.15.3, Kafka 4.1): the mode never commits the one-partition identity-links
topic, neither its consumer offset (it stays unset; faust-streaming#517 reports "has not
committed TP at all") nor, so it seems, the transactions of what the link agent produces: every
event that carries two or more identifiers (a signup with an email, a loyalty signup) never
reaches its person, and its actions (the welcome mail) never appear. An earlier run of this
test with SIGKILLs also left other people's outputs missing minutes after the restart. The
product therefore does not offer the mode.

If this test fails, a Faust release may have fixed this: run all fault tests in this mode and
revisit the decision in the README.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import orjson
import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from processor import topics as t
from tests.brokers.apache_kafka import ApacheKafka
from tests.support import faults
from tests.support.worker import WorkerProcess

pytestmark = [pytest.mark.broker, pytest.mark.timeout(faults.timeout_s(0.25))]

EXACTLY_ONCE = Path(__file__).resolve().parents[1] / "support" / "exactly_once"


async def _committed_links(bootstrap: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(t.APP_ID)
    finally:
        await admin.close()
    meta = offsets.get(TopicPartition(t.IDENTITY_LINKS, 0))
    return -1 if meta is None else int(meta.offset)


def _linking(traffic: faults.Traffic) -> set[str]:
    """Event ids of the valid events that carry two or more identifiers (they link them)."""
    out = set()
    for i, eid in traffic.event_ids.items():
        value = traffic.messages[i][2]
        if value is not None and len(orjson.loads(value)["identity"]) > 1:
            out.add(eid)
    return out


def test_exactly_once_mode_never_commits_the_identity_links_and_loses_their_events(
    kafka: ApacheKafka, traffic: faults.Traffic, baseline: faults.Outputs, tmp_path: Path
) -> None:
    mine = traffic.subset(21, 5)  # 21 is prime to the 4 kinds of customer: all kinds
    want = baseline.only(mine.people.values())
    linking = _linking(mine)
    worker = WorkerProcess(kafka.bootstrap, tmp_path / "w", PYTHONPATH=str(EXACTLY_ONCE))
    try:
        faults.started(worker)
        began = time.monotonic()
        coords = asyncio.run(faults.produce_recorded(kafka.bootstrap, mine.messages))
        # At-least-once needs about a second for these; give the mode a minute.
        deadline = began + 60
        while True:
            got = asyncio.run(faults.read_outputs(kafka.bootstrap, committed_only=True))
            if faults.differences(want, got) == [] or time.monotonic() > deadline:
                break
            time.sleep(3)
        links = len(asyncio.run(faults.read_all(kafka.bootstrap, t.IDENTITY_LINKS)))
        committed = asyncio.run(_committed_links(kafka.bootstrap))
        log = worker.log_path.read_text(errors="replace")
    finally:
        worker.stop()
    sent = set(mine.event_ids.values())
    lost = sent - got.seen
    missing_actions = set(want.actions) - set(got.actions)
    faults.report(
        f"exactly_once: {len(mine.messages)} messages ({len(linking)} events linking "
        f"identifiers); after {time.monotonic() - began:.0f} s a read_committed consumer sees "
        f"{len(sent) - len(lost)} of {len(sent)} events processed and {len(got.actions)} of "
        f"{len(want.actions)} action ids; identity-links holds {links} records, its committed "
        f"offset is {committed}"
    )
    assert "transactional producers" in log  # the mode really was on
    assert links > 0
    assert committed < 0, "identity-links is committed in exactly-once mode now: revisit"
    assert lost == linking, "only the events through identity-links were expected to be lost"
    assert missing_actions, "welcome mails of signups that link an email are missing"
    assert len(coords) == len(mine.messages)
