"""The internal message on the internal topics: what it is (its kind), a valid event or command
or what the agents tell each other, and where it was read."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, NamedTuple

import orjson


class Kind(StrEnum):
    """What an internal message is, and who sends it to whom."""

    #: A touchpoint, validated at ingest (ingest → link agent, route agent or journey agent).
    event = "event"
    #: An erase command, validated at ingest (ingest → link agent → journey agent).
    control = "control"
    #: The identifiers of an event that went to its person straight from ingest (→ link agent).
    link = "link"
    #: An identifier now belongs to another person, or to nobody (link agent → route agent).
    alias = "alias"
    #: Hand the person at this key over to another key (route agent → journey agent).
    merge = "merge"
    #: A person's state, handed over by a merge (journey agent → journey agent).
    absorb = "absorb"
    #: Wipe what an erased identifier's own key holds (route agent → journey agent).
    purge = "purge"
    #: Fire what is due for the person at this key (the clock → journey agent).
    timer = "timer"


_PREFIX = b'{"kind":"'
#: Each kind by its name (a look-up costs a tenth of calling the enum).
_KIND = {k.value: k for k in Kind}


class Source(NamedTuple):
    """Where an inbound message was read, kept so that any later failure can be dead-lettered
    with the original coordinates. (A tuple: one is made for every message an agent handles,
    and a frozen dataclass takes twice as long to make.)"""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    timestamp_ms: int | None


def pack(kind: Kind, payload: dict[str, Any] | orjson.Fragment, channel: str, src: Source) -> bytes:
    """Envelope bytes: the kind (first, for `kind_of`), the payload (a dict, or JSON made
    already) and its source."""
    return orjson.dumps(
        {
            "kind": kind,
            "channel": channel,
            "payload": payload,
            "src": [src.topic, src.partition, src.offset, src.timestamp_ms],
            "key": src.key.decode("utf-8", "replace") if src.key is not None else None,
        }
    )


def unpack(raw: bytes) -> tuple[Kind, str, dict[str, Any], Source]:
    """Inverse of `pack` (the source key comes back as UTF-8 text)."""
    d = orjson.loads(raw)
    topic, partition, offset, ts = d["src"]
    key = d["key"].encode() if d["key"] is not None else None
    return _KIND[d["kind"]], d["channel"], d["payload"], Source(topic, partition, offset, key, ts)


def kind_of(raw: bytes) -> Kind:
    """An envelope's kind without parsing the rest: for an agent that passes most messages on
    as they are (the route agent forwards everything but aliases)."""
    start = len(_PREFIX)
    if not raw.startswith(_PREFIX):
        raise ValueError("not an internal envelope")
    return Kind(raw[start : raw.index(b'"', start)].decode())
