"""The command line against a real (embedded) broker: topics, refusals, clean shutdown."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from processor import topics as t
from processor.kafka.embedded import free_port
from tests.support.worker import WorkerProcess

pytestmark = pytest.mark.broker


def touchpoint(
    *args: str, bootstrap: str | None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOUCHPOINT_")}
    if bootstrap:
        env["TOUCHPOINT_KAFKA_BOOTSTRAP"] = bootstrap
    return subprocess.run(
        [sys.executable, "-m", "processor.cli", *args],
        env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def test_run_refuses_to_start_without_its_topics(broker_bootstrap: str) -> None:
    result = touchpoint("run", bootstrap=broker_bootstrap)
    assert result.returncode == 2
    assert "refusing to start" in result.stderr
    for name in t.ALL:
        assert f"{name}: existence is missing" in result.stderr
    assert "touchpoint topics apply" in result.stderr


def test_topics_check_apply_and_drift(broker_bootstrap: str) -> None:
    async def precreate() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=broker_bootstrap)
        await admin.start()
        try:
            await admin.create_topics([
                NewTopic(t.ACTIONS, 2, 1, topic_configs={"retention.ms": "1000"}),
            ])  # fmt: skip
        finally:
            await admin.close()

    asyncio.run(precreate())
    check = touchpoint("topics", "check", bootstrap=broker_bootstrap)
    assert check.returncode == 1
    assert f"drift: {t.WEB}: existence is missing, declared present" in check.stdout

    apply = touchpoint("topics", "apply", bootstrap=broker_bootstrap)
    assert apply.returncode == 0
    assert f"{len(t.ALL)} topics declared, {len(t.ALL) - 1} created" in apply.stdout
    assert f"created {t.ACTIONS}" not in apply.stdout  # never altered, never recreated

    check = touchpoint("topics", "check", bootstrap=broker_bootstrap)
    assert check.returncode == 1
    assert check.stdout.splitlines() == [
        f"drift: {t.ACTIONS}: partitions is 2, declared 8",
        f"drift: {t.ACTIONS}: retention.ms is 1000, declared 604800000",
        "2 difference(s)",
    ]
    again = touchpoint("topics", "apply", bootstrap=broker_bootstrap)
    assert f"{len(t.ALL)} topics declared, 0 created" in again.stdout


def test_topics_check_passes_after_apply(topics_ready: str) -> None:
    check = touchpoint("topics", "check", bootstrap=topics_ready)
    assert check.returncode == 0, check.stdout
    assert check.stdout.strip() == "topics match their declarations"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_run_with_the_embedded_broker_stops_everything(tmp_path: Path, sig: signal.Signals) -> None:
    broker_port = free_port()
    worker = WorkerProcess("", tmp_path)
    del worker.env["TOUCHPOINT_KAFKA_BOOTSTRAP"]
    worker.env["TOUCHPOINT_EMBEDDED_BROKER_PORT"] = str(broker_port)
    worker.start()
    try:
        assert _listening(broker_port)
        log = worker.log_path.read_text()
        assert f"embedded broker listening on 127.0.0.1:{broker_port}" in log
        assert worker.proc is not None
        worker.proc.send_signal(sig)
        assert worker.proc.wait(30) == 0
    finally:
        worker.stop()
    deadline = time.monotonic() + 10
    while _listening(broker_port) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _listening(broker_port), "the embedded broker outlived the worker"


def test_broker_command_runs_in_the_foreground(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOUCHPOINT_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "processor.cli", "broker", "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(3)]
        assert lines[0].strip() == f"touchpoint: embedded broker listening on 127.0.0.1:{port}"
        while not lines[-1].startswith("export"):
            lines.append(proc.stdout.readline())
        assert f"{len(t.ALL)} topics declared, {len(t.ALL)} created\n" in lines
        assert lines[-1].startswith(f"export TOUCHPOINT_KAFKA_BOOTSTRAP=127.0.0.1:{port}")
        check = touchpoint("topics", "check", bootstrap=f"127.0.0.1:{port}")
        assert check.returncode == 0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    assert not _listening(port)


def test_run_refuses_an_embedded_broker_port_in_use(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = touchpoint("run", "--broker-port", str(port), bootstrap=None)
    assert result.returncode == 1
    assert result.stderr.startswith(f"touchpoint: port {port} on 127.0.0.1 is in use")


async def _create(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        await admin.close()


async def _counts(bootstrap: str, topics: list[str]) -> dict[str, int]:
    """Messages in each topic that exists, read from the beginning (the embedded broker's end
    offsets can lag a batch just written)."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        listed = set(await admin.list_topics())
    finally:
        await admin.close()
    out = {topic: 0 for topic in topics if topic in listed}
    if not out:
        return out
    # The producer asks the broker for each topic's partitions (a consumer's topics() does
    # not fill its own metadata on Apache Kafka).
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        tps = [
            TopicPartition(topic, p) for topic in out for p in await producer.partitions_for(topic)
        ]
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        while batch := await consumer.getmany(timeout_ms=2000):
            for tp, records in batch.items():
                out[tp.topic] += len(records)
        return out
    finally:
        await consumer.stop()


def test_publish_checks_the_whole_file_and_the_topic_before_sending(
    topics_ready: str, tmp_path: Path
) -> None:
    good = '{"channel": "web", "identity": {"anonymous_id": "a-1"}}\n'
    events = tmp_path / "events.jsonl"
    events.write_text(good * 3 + "{not json\n" + good)
    result = touchpoint("publish", str(events), bootstrap=topics_ready)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"touchpoint: {events}: 1 of 5 line(s) cannot be published, nothing was sent:",
        f"  {events}:4: not a JSON object, and no --topic given",
    ]
    assert asyncio.run(_counts(topics_ready, [t.WEB])) == {t.WEB: 0}

    events.write_text(good * 2)
    result = touchpoint(
        "publish", "--topic", "touchpoints.wbe", str(events), bootstrap=topics_ready
    )
    assert result.returncode == 1
    assert result.stderr == (
        "touchpoint: --topic touchpoints.wbe: not a declared topic (did you mean "
        "'touchpoints.web'?); --any-topic publishes to an existing one anyway\n"
    )
    assert asyncio.run(_counts(topics_ready, ["touchpoints.wbe"])) == {}

    any_topic = ("publish", "--topic", "scratch", "--any-topic", str(events))
    result = touchpoint(*any_topic, bootstrap=topics_ready)
    assert result.returncode == 1
    assert result.stderr == (
        "touchpoint: --topic scratch: no such topic on the cluster; create it first\n"
    )
    asyncio.run(_create(topics_ready, "scratch"))
    result = touchpoint(*any_topic, bootstrap=topics_ready)
    assert result.returncode == 0, result.stderr
    result = touchpoint("publish", str(events), bootstrap=topics_ready)
    assert result.returncode == 0, result.stderr
    assert asyncio.run(_counts(topics_ready, [t.WEB, "scratch"])) == {t.WEB: 2, "scratch": 2}
