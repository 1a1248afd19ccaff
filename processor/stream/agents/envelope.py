"""The internal message on the customer-events topic: a valid event or command, re-keyed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson


@dataclass(frozen=True, slots=True)
class Source:
    """Where an inbound message was read, kept so that any later failure can be dead-lettered
    with the original coordinates."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    timestamp_ms: int | None


def pack(kind: str, payload: dict[str, Any], channel: str, src: Source) -> bytes:
    """Envelope bytes: the validated payload plus its source coordinates."""
    return orjson.dumps(
        {
            "kind": kind,
            "channel": channel,
            "payload": payload,
            "src": [src.topic, src.partition, src.offset, src.timestamp_ms],
            "key": src.key.decode("utf-8", "replace") if src.key is not None else None,
        }
    )


def unpack(raw: bytes) -> tuple[str, str, dict[str, Any], Source]:
    """Inverse of `pack` (the source key comes back as UTF-8 text)."""
    d = orjson.loads(raw)
    topic, partition, offset, ts = d["src"]
    key = d["key"].encode() if d["key"] is not None else None
    return d["kind"], d["channel"], d["payload"], Source(topic, partition, offset, key, ts)
