"""Dead letters from ingest and the agents, with the inbound message's coordinates."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from processor import topics as t
from processor.decode import Rejection, dead_letter
from processor.events import Channel
from processor.messages import ErrorKind, to_json
from processor.stream.agents.envelope import Source
from processor.stream.app import Runtime
from processor.stream.commit.checkpoint import Checkpoint, OutputTooLarge

CHANNEL_OF_TOPIC = {t.WEB: Channel.web, t.EMAIL: Channel.email, t.STORE: Channel.store}
#: How much of a too-large message a dead letter keeps (the source coordinates hold the rest).
_KEEP_TOO_LARGE = 64 * 1024


def source_of(message: Any) -> Source:
    """The coordinates of a Faust message."""
    ts = message.timestamp
    return Source(
        message.topic, message.partition, message.offset, message.key,
        int(ts * 1000) if ts is not None else None,
    )  # fmt: skip


def label_of(topic: str) -> str:
    """The bounded `source` label of an inbound topic: its channel, or `control`."""
    channel = CHANNEL_OF_TOPIC.get(topic)
    return channel.value if channel is not None else "control"


def letter(
    rt: Runtime, rejection: Rejection, value: bytes | None, src: Source, label: str
) -> bytes:
    """The dead letter of one message, counted."""
    record = dead_letter(
        rejection,
        value=value,
        topic=src.topic,
        partition=src.partition,
        offset=src.offset,
        key=src.key,
        timestamp_ms=src.timestamp_ms,
        now=datetime.now(UTC),
        keep_bytes=_KEEP_TOO_LARGE,
    )
    rt.metrics.deadletters.labels(label, rejection.kind.value).inc()
    return to_json(record)


def send(
    rt: Runtime, cp: Checkpoint, rejection: Rejection, value: bytes | None, src: Source, label: str
) -> None:
    """Dead-letter one message into the checkpoint, and count it."""
    cp.send(t.DEADLETTER, src.key, letter(rt, rejection, value, src, label))


def too_large(exc: OutputTooLarge) -> Rejection:
    """The rejection for a valid message whose outputs its topics would refuse."""
    return Rejection(ErrorKind.too_large, str(exc), ())


def internal(exc: BaseException) -> Rejection:
    """The rejection for a valid message whose processing raised (a bug)."""
    return Rejection(ErrorKind.internal, f"{type(exc).__name__}: {exc}", ())
