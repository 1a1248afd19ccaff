"""Clients we did not write: the README's sample events published, and the outputs read, by
kcat (librdkafka, the Debian package) and confluent-kafka-python give exactly what aiokafka does.

Every run starts a fresh broker and one worker, publishes topics/examples/events.jsonl with one
client and reads the inbound topics and the three output topics (journey.transitions,
journey.actions, touchpoints.deadletter) back with every client:

- each reader sees the same messages, byte for byte, partition by partition, in the same order;
- the inbound topics hold exactly the file's lines under their keys (whatever partitioner the
  client used: librdkafka's default is CRC32-based, not the murmur2 of aiokafka and Java);
- the outputs equal those of the run published with aiokafka, as multisets of (topic, partition,
  key, value), leaving out only what depends on the wall clock (`created_at` and `send_after` of
  an action, `dead_lettered_at`) or on where the client put the message (a dead letter's
  `source.partition`, `offset` and `timestamp`, which are checked to point at the message).

Three things make the outputs a function of the file alone. The event times are moved so that
the last event happened a minute ago (same gaps, same bytes otherwise): no trigger is stale and
none in the future, whatever the date. The worker fires no timers during a run: the cart
reminder (1 h after the cart_add, an hour ago) is then due at once, and whether the timer tick
or the order that cancels it comes first would be a race. And the events are published one at
a time, each once the worker has handled the previous: a linking event (the signup, with two
identifiers) reaches the journey through the identity-links topic, one hop later than an
event with only the customer id, so publishing the file at once would leave which of them
opens the person's journey to a race.

kcat and confluent-kafka need Apache Kafka (TOUCHPOINT_TEST_BROKER=kafka). The embedded broker
runs the aiokafka and confluent-kafka cases only: kcat's ApiVersionRequest fails against it
(see the README's "Clients and brokers").
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import confluent_kafka
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from processor import topics as t
from processor.journey.outcome import action_id
from processor.kafka.tools import route
from processor.settings import REPO_ROOT
from tests.conftest import BROKER, fresh_broker
from tests.support.kafka import produce
from tests.support.system_tools import require_tool
from tests.support.worker import WorkerProcess, metric_values

pytestmark = pytest.mark.broker

EVENTS = REPO_ROOT / "topics/examples/events.jsonl"
OUTPUTS = (t.TRANSITIONS, t.ACTIONS, t.DEADLETTER)
INBOUND = (t.WEB, t.STORE)  # the channels the sample file uses
CLIENTS = (
    ("aiokafka", "confluent-kafka", "kcat")
    if BROKER == "kafka"
    else ("aiokafka", "confluent-kafka")
)

#: (partition, offset, key, value) of every message of a topic, in partition and offset order.
Record = tuple[int, int, bytes | None, bytes]
Topics = dict[str, list[Record]]


# -- the input ----------------------------------------------------------------------------------

_OCCURRED_AT = re.compile(rb'"occurred_at": "([^"]+)"')


def _parse(at: bytes) -> datetime:
    return datetime.fromisoformat(at.decode().replace("Z", "+00:00"))


def _moved_lines(now: datetime) -> list[bytes]:
    """The file's lines with every `occurred_at` moved by one amount: the last is a minute ago."""
    lines = [line.strip() for line in EVENTS.read_bytes().splitlines() if line.strip()]
    times = [_parse(m.group(1)) for line in lines if (m := _OCCURRED_AT.search(line))]
    assert len(times) == len(lines), "every sample event has an occurred_at"
    shift = (now - timedelta(minutes=1) - max(times)).total_seconds()
    shift_by = timedelta(seconds=int(shift))

    def move(match: re.Match[bytes]) -> bytes:
        at = (_parse(match.group(1)) + shift_by).isoformat().replace("+00:00", "Z")
        return b'"occurred_at": "' + at.encode() + b'"'

    return [_OCCURRED_AT.sub(move, line) for line in lines]


# -- publishing, one message at a time ------------------------------------------------------------


def _publish_aiokafka(bootstrap: str, topic: str, key: bytes | None, value: bytes) -> None:
    asyncio.run(produce(bootstrap, [(topic, key, value)]))


def _publish_confluent(bootstrap: str, topic: str, key: bytes | None, value: bytes) -> None:
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    failures: list[object] = []
    producer.produce(topic, value, key, on_delivery=lambda err, _msg: failures.append(err))
    assert producer.flush(30) == 0, "confluent-kafka did not deliver within 30 s"
    assert failures == [None], failures


def _publish_kcat(bootstrap: str, topic: str, key: bytes | None, value: bytes) -> None:
    command = [require_tool("kcat"), "-b", bootstrap, "-P", "-t", topic, "-X", "acks=all"]
    if key is not None:
        command += ["-k", key.decode()]
    result = subprocess.run(command, input=value + b"\n", capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr.decode()


PUBLISH: dict[str, Callable[[str, str, bytes | None, bytes], None]] = {
    "aiokafka": _publish_aiokafka,
    "confluent-kafka": _publish_confluent,
    "kcat": _publish_kcat,
}


def _handled(worker: WorkerProcess) -> float:
    """Inbound messages the worker is done with: applied to a journey, or dead-lettered."""
    text = worker.metrics()
    return sum(metric_values(text, "touchpoint_events_processed_total").values()) + sum(
        metric_values(text, "touchpoint_deadletters_total").values()
    )


def _emitted(worker: WorkerProcess) -> dict[str, int]:
    """What the worker says it sent, per output topic."""
    text = worker.metrics()
    counts = {
        t.TRANSITIONS: "touchpoint_transitions_total",
        t.ACTIONS: "touchpoint_actions_total",
        t.DEADLETTER: "touchpoint_deadletters_total",
    }
    return {topic: int(sum(metric_values(text, name).values())) for topic, name in counts.items()}


# -- reading every partition to its end -----------------------------------------------------------


async def _read_aiokafka_async(bootstrap: str, topics: tuple[str, ...]) -> Topics:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(list(topics))
    finally:
        await admin.close()
    tps = [TopicPartition(d["topic"], p["partition"]) for d in described for p in d["partitions"]]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
        auto_offset_reset="earliest",
    )  # fmt: skip
    await consumer.start()
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: Topics = {topic: [] for topic in topics}
        deadline = time.monotonic() + 30
        while any([await consumer.position(tp) < ends[tp] for tp in tps]):
            assert time.monotonic() < deadline, "aiokafka could not read to the end in 30 s"
            for tp, records in (await consumer.getmany(timeout_ms=200)).items():
                out[tp.topic] += [(tp.partition, r.offset, r.key, r.value) for r in records]
    finally:
        await consumer.stop()
    return {topic: sorted(records) for topic, records in out.items()}


def _read_aiokafka(bootstrap: str, topics: tuple[str, ...]) -> Topics:
    return asyncio.run(_read_aiokafka_async(bootstrap, topics))


def _read_confluent(bootstrap: str, topics: tuple[str, ...]) -> Topics:
    """A consumer in a group of its own (so it goes through JoinGroup and SyncGroup)."""
    consumer = confluent_kafka.Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"test-clients-{uuid.uuid4()}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "enable.partition.eof": True,
        # The embedded broker holds a join for half the session timeout (45 s by default).
        "session.timeout.ms": 6000,
    })  # fmt: skip
    out: Topics = {topic: [] for topic in topics}
    try:
        metadata = consumer.list_topics(timeout=30)
        partitions = {(topic, p) for topic in topics for p in metadata.topics[topic].partitions}
        consumer.subscribe(list(topics))
        at_end: set[tuple[str, int]] = set()
        deadline = time.monotonic() + 60
        while at_end != partitions:
            assert time.monotonic() < deadline, f"confluent-kafka reached the end of {at_end}"
            message = consumer.poll(0.5)
            if message is None:
                continue
            where = (message.topic(), message.partition())
            error = message.error()
            if error is not None:
                assert error.code() == confluent_kafka.KafkaError._PARTITION_EOF, error
                at_end.add(where)
                continue
            out[where[0]].append((where[1], message.offset(), message.key(), message.value()))
    finally:
        consumer.close()
    return {topic: sorted(records) for topic, records in out.items()}


def _read_kcat(bootstrap: str, topics: tuple[str, ...]) -> Topics:
    kcat = require_tool("kcat")
    out: Topics = {}
    for topic in topics:
        result = subprocess.run(
            [kcat, "-b", bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-q", "-J"],
            capture_output=True, timeout=60,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr.decode()
        out[topic] = sorted(
            (m["partition"], m["offset"], _utf8(m["key"]), _utf8(m["payload"]) or b"")
            for m in map(orjson.loads, result.stdout.splitlines())
        )
    return out


def _utf8(text: str | None) -> bytes | None:
    return None if text is None else text.encode()


READ: dict[str, Callable[[str, tuple[str, ...]], Topics]] = {
    "aiokafka": _read_aiokafka,
    "confluent-kafka": _read_confluent,
    "kcat": _read_kcat,
}


# -- one run ------------------------------------------------------------------------------------


def _run(publisher: str, lines: list[bytes], workdir: Path) -> tuple[Topics, dict[str, int]]:
    """Publish `lines` with `publisher` to a fresh broker and worker; read everything back with
    every client, check they agree, and return the topics (as read) and the worker's counts."""
    with fresh_broker(workdir / "broker", topics=True) as bootstrap:
        # No timer fires during a run (a tick of an hour): the sample's cart reminder falls due
        # in the past once the times are moved, and would race the order that cancels it.
        with WorkerProcess(bootstrap, workdir / "worker", TOUCHPOINT_TIMER_TICK_S="3600") as worker:
            for n, line in enumerate(lines, 1):
                topic, key = route(line, None)
                PUBLISH[publisher](bootstrap, topic, key, line)
                deadline = time.monotonic() + 60
                while _handled(worker) < n:
                    assert time.monotonic() < deadline, (n, worker.log_tail())
                    time.sleep(0.1)
            assert _handled(worker) == len(lines)
            emitted = _emitted(worker)
        # The worker has stopped (and flushed): the topics no longer change while read.
        reads = {client: READ[client](bootstrap, INBOUND + OUTPUTS) for client in CLIENTS}
    for client, read in reads.items():
        assert read == reads["aiokafka"], f"{client} read other messages than aiokafka"
    return reads["aiokafka"], emitted


def _normal(topic: str, value: bytes) -> bytes:
    """The value without what depends on the wall clock or on the inbound partitioning."""
    data: dict[str, Any] = orjson.loads(value)
    if topic == t.ACTIONS:
        created, send_after = data.pop("created_at"), data.pop("send_after")
        assert _parse(created.encode()) <= _parse(send_after.encode()), data
    elif topic == t.DEADLETTER:
        _parse(data.pop("dead_lettered_at").encode())
        for field in ("partition", "offset", "timestamp"):
            data["source"].pop(field)
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS)


def _outputs(read: Topics) -> dict[str, Counter[tuple[int, bytes | None, bytes]]]:
    return {
        topic: Counter((p, key, _normal(topic, value)) for p, _, key, value in read[topic])
        for topic in OUTPUTS
    }


def _check_inbound(read: Topics, lines: list[bytes]) -> None:
    """The inbound topics hold the file's lines under their keys, and each dead letter's source
    coordinates point at the message it was made from."""
    published = Counter((route(line, None)[0], route(line, None)[1], line) for line in lines)
    stored = Counter((topic, key, value) for topic in INBOUND for _, _, key, value in read[topic])
    assert stored == published
    at = {(topic, p, o): value for topic in INBOUND for p, o, _, value in read[topic]}
    for _, _, _, value in read[t.DEADLETTER]:
        source = orjson.loads(value)["source"]
        raw = at[(source["topic"], source["partition"], source["offset"])]
        assert raw.decode() == orjson.loads(value)["raw"]


# -- the tests ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lines() -> list[bytes]:
    return _moved_lines(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture(scope="module")
def with_aiokafka(
    lines: list[bytes], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Topics, dict[str, int]]:
    return _run("aiokafka", lines, tmp_path_factory.mktemp("aiokafka"))


def test_aiokafka_run_gives_the_sample_outputs(
    lines: list[bytes], with_aiokafka: tuple[Topics, dict[str, int]]
) -> None:
    """The reference run: what the README's sample events must give, and every read agreed."""
    read, emitted = with_aiokafka
    _check_inbound(read, lines)
    assert {topic: len(read[topic]) for topic in OUTPUTS} == emitted
    values = {topic: [orjson.loads(v) for *_, v in read[topic]] for topic in OUTPUTS}
    moves = Counter((v["customer_id"], v["from_stage"], v["to_stage"], v["trigger_event_id"])
                    for v in values[t.TRANSITIONS])  # fmt: skip
    assert moves == Counter([
        ("anon:ck-77f", None, "awareness", "ex-0001"),
        ("C-1001", None, "awareness", "ex-0002"),
        ("C-1001", "awareness", "consideration", "ex-0003"),
        ("C-1001", "consideration", "purchase", "ex-0005"),
        ("loyalty:L-555", None, "awareness", "ex-0006"),
        ("loyalty:L-555", "awareness", "purchase", "ex-0006"),
    ])  # fmt: skip
    actions = values[t.ACTIONS]
    assert sorted((a["customer_id"], a["template"], a["trigger_event_id"]) for a in actions) == [
        ("C-1001", "order_welcome", "ex-0005"),
        ("C-1001", "welcome", "ex-0002"),
        ("loyalty:L-555", "order_welcome", "ex-0006"),
    ]
    for a in actions:  # deterministic ids: a sender de-duplicates on them
        assert a["action_id"] == action_id(
            a["journey"], a["rule"], a["customer_id"], a["trigger_event_id"]
        )
    assert [(d["error"]["kind"], d["source"]["key"]) for d in values[t.DEADLETTER]] == [
        ("unknown_type", "ck-99")
    ]


@pytest.mark.parametrize("publisher", [c for c in CLIENTS if c != "aiokafka"])
def test_other_clients_publish_to_the_same_outputs(
    publisher: str,
    lines: list[bytes],
    with_aiokafka: tuple[Topics, dict[str, int]],
    tmp_path: Path,
) -> None:
    read, emitted = _run(publisher, lines, tmp_path)
    _check_inbound(read, lines)
    assert emitted == with_aiokafka[1]
    assert _outputs(read) == _outputs(with_aiokafka[0])
