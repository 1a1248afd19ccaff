"""Fixtures of the fault tests: a fresh Apache Kafka per test, the traffic, and its baseline.

The fault tests run only on Apache Kafka (`make test-kafka`): the embedded broker keeps nothing
on disk and has no transactions. Their size is `TOUCHPOINT_FAULT_EVENTS` (see
tests/support/faults.py): 20,000 events by default, 100,000 under `CI=true`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest

from processor.kafka.tools import apply_topics
from processor.settings import Settings
from tests.brokers.apache_kafka import ApacheKafka
from tests.support import faults
from tests.support.worker import WorkerProcess


@pytest.fixture
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApacheKafka]:
    """A fresh Apache Kafka with the declared topics; the test may stop and restart it."""
    faults.require_kafka()
    with ApacheKafka(tmp_path_factory.mktemp("kafka"), progress=faults.report) as broker:
        asyncio.run(apply_topics(Settings(kafka_bootstrap=broker.bootstrap)))
        yield broker


@pytest.fixture(scope="session")
def traffic() -> faults.Traffic:
    """The fault tests' customers: `faults.size()` messages, made when the session starts."""
    faults.require_kafka()
    return faults.customers(faults.size())


@pytest.fixture(scope="session")
def baseline(traffic: faults.Traffic, tmp_path_factory: pytest.TempPathFactory) -> faults.Outputs:
    """The outputs of an undisturbed run of `traffic`: one worker, nothing killed."""
    workdir = tmp_path_factory.mktemp("baseline")
    with ApacheKafka(workdir / "kafka", progress=faults.report) as broker:
        asyncio.run(apply_topics(Settings(kafka_bootstrap=broker.bootstrap)))
        with WorkerProcess(broker.bootstrap, workdir / "worker"):
            started = time.monotonic()
            coords = asyncio.run(faults.produce_recorded(broker.bootstrap, traffic.messages))
            faults.wait_settled(broker.bootstrap, timeout_s=1800)
            took = time.monotonic() - started
            out = asyncio.run(faults.read_outputs(broker.bootstrap))
    out.took_s = took
    problems = faults.accounted(traffic, coords, out)
    assert problems == [], problems
    faults.report(
        f"baseline: {len(traffic.messages)} messages ({len(traffic.invalid)} bad) in {took:.0f} s "
        f"({len(traffic.messages) / took:.0f}/s), {len(out.states)} people, "
        f"{len(out.actions)} actions, {sum(out.transitions.values())} transitions"
    )
    return out
