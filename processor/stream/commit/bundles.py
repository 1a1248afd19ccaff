"""Bundles: many internal messages of one partition carried in one Kafka record.

Faust pays a fixed cost per consumed record (its stream iteration, acks, the hand-over to the
agent: ~84 µs on the benchmark's machine, more than most of the work), and the producer and
the broker pay one per produced record. A checkpoint (commit/checkpoint.py) therefore collects
what is sent to an internal topic per destination partition, in order, and sends each
partition's messages as one bundle record when it commits. The receiving agent takes the
messages out of the bundle and handles each as if it had arrived on its own, with its own key.

A bundle is the record value `MAGIC` followed by, per message, the key and the value, each
prefixed with its length (4 bytes, big-endian). An internal message on its own is a JSON
envelope (agents/envelope.py) and starts with `{`, so a reader tells the two apart by the first
bytes. Keys and values are opaque bytes: nothing is re-encoded.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

MAGIC = b"\x00tpb1"
_LEN = struct.Struct(">I")
#: A bundle stops growing at this many bytes (the broker's default message limit is 1 MB); a
#: message larger than this is sent as a bundle of its own.
MAX_BYTES = 256 * 1024


def is_bundle(value: bytes | None) -> bool:
    """Is this record value a bundle (not a single envelope)?"""
    return value is not None and value.startswith(MAGIC)


class Builder:
    """The messages bound for one partition, packed as they come."""

    __slots__ = ("_parts", "size")

    def __init__(self) -> None:
        self._parts: list[bytes] = [MAGIC]
        self.size = len(MAGIC)

    def fits(self, key: bytes, value: bytes) -> bool:
        """Would adding this message keep the bundle within `MAX_BYTES` (or is it empty)?"""
        return len(self._parts) == 1 or self.size + 8 + len(key) + len(value) <= MAX_BYTES

    def add(self, key: bytes, value: bytes) -> None:
        """Append one message."""
        self._parts += (_LEN.pack(len(key)), key, _LEN.pack(len(value)), value)
        self.size += 8 + len(key) + len(value)

    def value(self) -> bytes:
        """The bundle record's value."""
        return b"".join(self._parts)


def pack(messages: list[tuple[bytes, bytes]]) -> bytes:
    """One bundle of `messages` (key, value), in order."""
    builder = Builder()
    for key, value in messages:
        builder.add(key, value)
    return builder.value()


def unpack(value: bytes) -> list[tuple[bytes, bytes]]:
    """The (key, value) messages of a bundle, in order; ValueError if it is cut short."""
    out = []
    at, end = len(MAGIC), len(value)
    while at < end:
        key, at = _field(value, at, end)
        item, at = _field(value, at, end)
        out.append((key, item))
    return out


def _field(value: bytes, at: int, end: int) -> tuple[bytes, int]:
    if at + 4 > end:
        raise ValueError("truncated bundle")
    (n,) = _LEN.unpack_from(value, at)
    at += 4
    if at + n > end:
        raise ValueError("truncated bundle")
    return value[at : at + n], at + n


def messages(key: bytes | None, value: bytes | None) -> Sequence[tuple[bytes | None, bytes]]:
    """The messages a consumed record carries: a bundle's, or the record itself."""
    if value is None:
        return []
    return unpack(value) if is_bundle(value) else [(key, value)]
