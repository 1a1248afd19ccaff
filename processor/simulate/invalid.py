"""Invalid inbound messages, one maker per dead-letter kind, as broken upstreams send them. Pure."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import orjson

from processor import topics as t

#: The contract's dead-letter kinds a message can provoke (`internal` marks a processor bug).
KINDS = (
    "decode",
    "validation",
    "unknown_type",
    "too_large",
    "future_timestamp",
    "channel_mismatch",
)
#: Kinds that a JSON-lines file (one object with `channel` a line) can carry.
FILE_KINDS = tuple(k for k in KINDS if k != "decode")

Bad = tuple[str, bytes, bytes]  # topic, key, value


def _event(n: int, typ: str, at: datetime, channel: str, **props: object) -> dict[str, object]:
    return {
        "event_id": f"bad-{n}",
        "type": typ,
        "channel": channel,
        "occurred_at": at.isoformat().replace("+00:00", "Z"),
        "identity": {"anonymous_id": f"ck-bad-{n}"},
        "context": {"timezone": "Europe/Berlin"},
        "properties": props,
    }


def _decode(n: int, at: datetime, max_bytes: int) -> Bad:
    variants = (
        b"\xff\xfe tracker sent latin-1 \xe4\xf6\xfc",  # not UTF-8
        b'{"event_id": "bad", "type": "page_view",',  # cut off: not JSON
        b'["page_view", "ck-1"]',  # JSON, not an object
    )
    return t.WEB, f"bad-{n}".encode(), variants[n % len(variants)]


def _validation(n: int, at: datetime, max_bytes: int) -> Bad:
    event = _event(n, "product_view", at, "web", category="kaffee")  # product_id is required
    if n % 2:
        event = _event(n, "page_view", at, "web") | {"identity": {}}  # no identifier at all
    return t.WEB, f"bad-{n}".encode(), orjson.dumps(event)


def _unknown_type(n: int, at: datetime, max_bytes: int) -> Bad:
    return t.STORE, f"bad-{n}".encode(), orjson.dumps(_event(n, "teleport", at, "store"))


def _too_large(n: int, at: datetime, max_bytes: int) -> Bad:
    event = _event(n, "page_view", at, "web", url="/?q=" + "x" * max_bytes)
    return t.WEB, f"bad-{n}".encode(), orjson.dumps(event)


def _future(n: int, at: datetime, max_bytes: int) -> Bad:
    # Ten years ahead: still in the future when a file written today is published much later.
    later = at + timedelta(days=3650)
    event = _event(n, "email_opened", later, "email", campaign_id="nl-01")
    return t.EMAIL, f"bad-{n}".encode(), orjson.dumps(event)


def _mismatch(n: int, at: datetime, max_bytes: int) -> Bad:
    # An email event on the web topic (the file form states `channel: web`, so it lands there).
    event = _event(n, "email_opened", at, "web", campaign_id="nl-01")
    return t.WEB, f"bad-{n}".encode(), orjson.dumps(event)


MAKERS: dict[str, Callable[[int, datetime, int], Bad]] = {
    "decode": _decode,
    "validation": _validation,
    "unknown_type": _unknown_type,
    "too_large": _too_large,
    "future_timestamp": _future,
    "channel_mismatch": _mismatch,
}


def make(kind: str, n: int, at: datetime, max_bytes: int) -> Bad:
    """The `n`-th invalid message of the run, of `kind`, occurring at `at`."""
    return MAKERS[kind](n, at, max_bytes)
