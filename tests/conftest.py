"""Fixtures shared by the suite: a fresh broker per test that needs one.

`TOUCHPOINT_TEST_BROKER` chooses it: `embedded` (the default, Tansu, starts in milliseconds) or
`kafka` (a real Apache Kafka in KRaft mode, jars from Maven Central, cached under `.cache/`).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from processor.kafka.embedded import EmbeddedBroker
from processor.kafka.tools import apply_topics
from processor.settings import Settings
from tests.brokers.apache_kafka import INSTALL_HINT, ApacheKafka, missing_tools

BROKER = os.environ.get("TOUCHPOINT_TEST_BROKER", "embedded")
if BROKER not in ("embedded", "kafka"):
    raise pytest.UsageError("TOUCHPOINT_TEST_BROKER must be `embedded` or `kafka`")


def require_apache_kafka() -> None:
    """Skip (or, under CI, fail) when Java or Maven is missing."""
    missing = missing_tools()
    if missing:
        message = f"the real Kafka broker needs {' and '.join(missing)}: {INSTALL_HINT}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)


@contextmanager
def fresh_broker(workdir: Path, *, topics: bool) -> Iterator[str]:
    """A new broker of the chosen kind (with the declared topics, if asked); stopped after."""
    workdir.mkdir(parents=True, exist_ok=True)
    if BROKER == "kafka":
        require_apache_kafka()
        with ApacheKafka(workdir) as kafka:
            if topics:
                asyncio.run(apply_topics(Settings(kafka_bootstrap=kafka.bootstrap)))
            yield kafka.bootstrap
        return
    with EmbeddedBroker(log_path=workdir / "broker.log") as broker:
        if topics:
            asyncio.run(apply_topics(Settings(kafka_bootstrap=broker.bootstrap)))
        yield broker.bootstrap


@pytest.fixture
def broker_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh broker with no topics; stopped after the test."""
    with fresh_broker(tmp_path_factory.mktemp("broker"), topics=False) as bootstrap:
        yield bootstrap


@pytest.fixture
def topics_ready(broker_bootstrap: str) -> str:
    """The broker, after `touchpoint topics apply`."""
    settings = Settings(kafka_bootstrap=broker_bootstrap)
    asyncio.run(apply_topics(settings))
    return broker_bootstrap
