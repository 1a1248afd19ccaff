"""The real Apache Kafka harness: topics, produce/consume, and data surviving a restart."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.brokers.apache_kafka import ApacheKafka, default_cache_dir
from tests.conftest import BROKER, require_apache_kafka

TOPIC = "harness-check"
PARTITIONS = 4
MESSAGES = 100

Record = tuple[int, int, bytes, bytes]  # partition, offset, key, value


async def _create_topic(bootstrap: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        response = await admin.create_topics(
            [NewTopic(TOPIC, num_partitions=PARTITIONS, replication_factor=1)]
        )
        errors = [error for error in response.topic_errors if error[1] != 0]
        assert errors == [], f"CreateTopics failed: {errors}"
        # Metadata of a new topic reaches the brokers a moment after CreateTopics returns.
        for _ in range(100):
            described = await admin.describe_topics([TOPIC])
            if len(described[0]["partitions"]) == PARTITIONS:
                break
            await asyncio.sleep(0.1)
        assert len(described[0]["partitions"]) == PARTITIONS
    finally:
        await admin.close()


async def _produce(bootstrap: str) -> list[Record]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        sent: list[Record] = []
        for i in range(MESSAGES):
            key, value = f"customer-{i % 17}".encode(), f"touchpoint-{i}".encode()
            meta = await producer.send_and_wait(TOPIC, value, key=key)
            sent.append((meta.partition, meta.offset, key, value))
        return sent
    finally:
        await producer.stop()


async def _consume_all(bootstrap: str) -> list[Record]:
    """Every record of the topic, read from the beginning up to the end offsets."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(TOPIC, p) for p in range(PARTITIONS)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(partitions)
        assert sum(end.values()) == MESSAGES
        received: list[Record] = []
        deadline = time.monotonic() + 60
        while len(received) < MESSAGES and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=1000)
            for batch in batches.values():
                received += [(m.partition, m.offset, m.key or b"", m.value or b"") for m in batch]
        # Nothing beyond the 100 records.
        extra = await consumer.getmany(timeout_ms=500)
        assert not any(extra.values())
        return sorted(received)
    finally:
        await consumer.stop()


@pytest.mark.broker
@pytest.mark.skipif(BROKER != "kafka", reason="runs in `make test-kafka`")
async def test_apache_kafka_round_trip_and_restart(tmp_path: Path) -> None:
    require_apache_kafka()
    async with ApacheKafka(tmp_path / "kafka", cache_dir=default_cache_dir()) as kafka:
        assert kafka.bootstrap.startswith("127.0.0.1:")
        assert kafka.pid is not None
        await _create_topic(kafka.bootstrap)

        sent = sorted(await _produce(kafka.bootstrap))
        assert {partition for partition, *_ in sent} == set(range(PARTITIONS))
        assert await _consume_all(kafka.bootstrap) == sent

        bootstrap, old_pid = kafka.bootstrap, kafka.pid
        await asyncio.to_thread(kafka.restart)
        assert kafka.bootstrap == bootstrap
        assert kafka.pid not in (None, old_pid)
        assert await _consume_all(kafka.bootstrap) == sent
    assert not kafka.running
    assert "Kafka Server started" in kafka.log_path.read_text("utf-8")
