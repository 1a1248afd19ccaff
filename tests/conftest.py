"""Fixtures shared by the suite: a fresh broker per test that needs one."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from processor.kafka.embedded import EmbeddedBroker
from processor.kafka.tools import apply_topics
from processor.settings import Settings


@pytest.fixture
def broker_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh embedded broker, with every declared topic created; stopped after the test."""
    log = tmp_path_factory.mktemp("broker") / "broker.log"
    with EmbeddedBroker(log_path=log) as broker:
        yield broker.bootstrap


@pytest.fixture
def topics_ready(broker_bootstrap: str) -> str:
    """The broker, after `touchpoint topics apply`."""
    settings = Settings(kafka_bootstrap=broker_bootstrap)
    asyncio.run(apply_topics(settings))
    return broker_bootstrap
