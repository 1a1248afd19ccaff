"""Hypothesis strategies for malformed inbound messages, each with the dead-letter kind it must get.

The kind follows from how the message is built (processor/decode.py documents the order of the
checks), never from running the decoder: random bytes that are no JSON object, invalid UTF-8,
nesting deeper than 1024 levels (and from 33 to 1024, which parses but is refused), times that
are not RFC 3339 or fall before year one in UTC, strings over the size limit, fields of the
wrong type, no identifier, timestamps an hour to ten years ahead, unknown types, and an event on
another channel's topic.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from processor import topics as t
from processor.events import EventType

#: (topic, key, value, expected dead-letter kind)
Bad = tuple[str, bytes | None, bytes | None, str]

_KNOWN = frozenset(e.value for e in EventType)
#: One valid event per topic, to break in one place at a time.
_VALID: dict[str, tuple[str, dict[str, Any]]] = {
    t.WEB: ("page_view", {"url": "/"}),
    t.EMAIL: ("email_opened", {"campaign_id": "nl-01"}),
    t.STORE: ("store_visit", {"store_id": "S-01"}),
}
_topics = st.sampled_from(sorted(_VALID))
_keys = st.one_of(st.none(), st.binary(max_size=40), st.text(max_size=40).map(str.encode))
_ints = st.integers(-(2**63), 2**63 - 1)  # JSON numbers that orjson writes
_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-_", min_size=1, max_size=16)


def _event(topic: str, n: int, now: datetime, **changes: Any) -> dict[str, Any]:
    typ, props = _VALID[topic]
    event: dict[str, Any] = {
        "event_id": f"bad-{n}",
        "type": typ,
        "occurred_at": (now - timedelta(minutes=1)).isoformat().replace("+00:00", "Z"),
        "identity": {"anonymous_id": f"ck-bad-{n}"},
        "context": {"timezone": "Europe/Berlin"},
        "properties": dict(props),
    }
    event.update(changes)
    return event


def _is_json_object(raw: bytes) -> bool:
    try:
        return isinstance(orjson.loads(raw), dict)
    except orjson.JSONDecodeError:
        return False


#: A string `huge_string` draws stands for a filler of the size and character it names, made
#: only for the messages `generate` keeps (most heavy draws are dropped).
_FILLER = re.compile(rb"@@filler:(\d+):(\d+)@@")


def _filled(value: bytes) -> bytes:
    def fill(m: re.Match[bytes]) -> bytes:
        char = chr(int(m.group(2)))
        return orjson.dumps(char * (int(m.group(1)) // len(char.encode()) + 1))[1:-1]

    return _FILLER.sub(fill, value, count=1)


def strategy(now: datetime, max_bytes: int, wire_bytes: int) -> st.SearchStrategy[Bad]:
    """Malformed messages as of `now`, for a worker with TOUCHPOINT_MAX_EVENT_BYTES=max_bytes;
    none larger than `wire_bytes` (what the broker takes)."""
    n = st.integers(0, 10**9)

    @st.composite
    def random_bytes(draw: st.DrawFn) -> Bad:
        raw = draw(st.binary(max_size=300).filter(lambda b: not _is_json_object(b)))
        value = raw or draw(st.sampled_from([b"", None]))
        key = draw(_keys)
        # Kafka takes no message without key and value: a null value comes with a key.
        return draw(_topics), b"" if key is None and value is None else key, value, "decode"

    @st.composite
    def invalid_utf8(draw: st.DrawFn) -> Bad:
        topic = draw(_topics)
        text = orjson.dumps(_event(topic, draw(n), now, context={"note": "@@"}))
        # Stray continuation bytes, an overlong form, a surrogate, a cut-off sequence, latin-1.
        bad = draw(st.sampled_from([b"\x80", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82", b"\xe4"]))
        where = draw(st.sampled_from([b"@@", b"bad-"]))
        return topic, draw(_keys), text.replace(where, bad, 1), "decode"

    def nested(draw: st.DrawFn, depths: st.SearchStrategy[int], kind: str) -> Bad:
        """An event whose `properties.x` nests a drawn depth (the value sits at level 3)."""
        topic = draw(_topics)
        depth = draw(depths)
        opener, closer = draw(st.sampled_from([(b"[", b"]"), (b'{"a":', b"}")]))
        text = orjson.dumps(_event(topic, draw(n), now, properties={"x": 0}))
        deep = opener * depth + b"0" + closer * depth
        value = text.replace(b'{"x":0}', b'{"x":' + deep + b"}", 1)
        return topic, draw(_keys), value, kind if len(value) <= max_bytes else "too_large"

    @st.composite
    def deep_nesting(draw: st.DrawFn) -> Bad:
        return nested(draw, st.integers(1025, 2500), "decode")  # past what JSON parsing takes

    @st.composite
    def too_deep_to_carry(draw: st.DrawFn) -> Bad:
        # JSON that parses (up to 1024 levels) but nests deeper than the contract's 32 levels:
        # once these failed as `internal` when the event was written again.
        return nested(draw, st.integers(31, 1020), "validation")

    @st.composite
    def time_not_carried(draw: st.DrawFn) -> Bad:
        # Not RFC 3339, or before year one once moved to UTC.
        topic = draw(_topics)
        at = draw(st.sampled_from([
            "0001-01-01T00:00:00+14:00", "0001-01-01T05:00:00+10:00", "2026-11-22T12:00Z",
            "2026-11-22T12:00:00+0100", "2026-11-22", "20261122T120000Z",
        ]))  # fmt: skip
        event = _event(topic, draw(n), now, occurred_at=at)
        return topic, draw(_keys), orjson.dumps(event), "validation"

    @st.composite
    def huge_string(draw: st.DrawFn) -> Bad:
        topic = draw(_topics)
        # Room for the rest of the event (and a 4-byte character more) under the broker's limit.
        size = draw(st.integers(max_bytes + 1, min(3 * max_bytes, wire_bytes - 512)))
        char = draw(st.sampled_from(["x", "é", "€", "\U0001f600"]))
        field = draw(st.sampled_from(["event_id", "type", "property"]))
        filler = f"@@filler:{size}:{ord(char)}@@"
        if field == "property":
            event = _event(topic, draw(n), now, properties={"huge": filler})
        else:
            event = _event(topic, draw(n), now, **{field: filler})
        return topic, draw(_keys), orjson.dumps(event), "too_large"

    @st.composite
    def wrong_type(draw: st.DrawFn) -> Bad:
        topic = draw(_topics)
        not_text = st.one_of(
            _ints, st.booleans(), st.lists(_ints, max_size=3), st.none(),
            st.dictionaries(_names, _ints, max_size=2),
        )  # fmt: skip
        field, value = draw(
            st.one_of(
                st.tuples(st.just("type"), not_text),
                st.tuples(st.just("event_id"), not_text),
                st.tuples(st.just("occurred_at"), st.one_of(_names, st.lists(_ints),
                                                            st.booleans(), st.none())),
                st.tuples(st.just("identity"), st.one_of(st.text(), _ints,
                                                         st.lists(st.text(), max_size=2))),
                st.tuples(st.just("properties"), st.one_of(st.text(), _ints,
                                                           st.lists(_ints))),
                st.tuples(st.just("context"), st.one_of(st.text(), _ints)),
            )
        )  # fmt: skip
        event = _event(topic, draw(n), now, **{field: value})
        return topic, draw(_keys), orjson.dumps(event), "validation"

    @st.composite
    def missing_identifier(draw: st.DrawFn) -> Bad:
        topic = draw(_topics)
        identity = draw(st.sampled_from([{}, {"customer_id": None}, {"email": None}]))
        if draw(st.booleans()):
            event = _event(topic, draw(n), now, identity=identity)
        else:
            event = _event(topic, draw(n), now)
            del event["identity"]
        return topic, draw(_keys), orjson.dumps(event), "validation"

    @st.composite
    def future_timestamp(draw: st.DrawFn) -> Bad:
        topic = draw(_topics)
        ahead = timedelta(seconds=draw(st.integers(3600, 3650 * 86400)))
        at = (now + ahead).isoformat().replace("+00:00", "Z")
        event = _event(topic, draw(n), now, occurred_at=at)
        return topic, draw(_keys), orjson.dumps(event), "future_timestamp"

    @st.composite
    def unknown_type(draw: st.DrawFn) -> Bad:
        topic = draw(_topics)
        typ = draw(st.text(min_size=1, max_size=40).filter(lambda s: s not in _KNOWN))
        event = _event(topic, draw(n), now, type=typ)
        return topic, draw(_keys), orjson.dumps(event), "unknown_type"

    @st.composite
    def other_channel(draw: st.DrawFn) -> Bad:
        topic = draw(_topics)
        other = draw(st.sampled_from(sorted(set(_VALID) - {topic})))
        event = _event(other, draw(n), now)  # valid on `other`'s topic, not on this one
        return topic, draw(_keys), orjson.dumps(event), "channel_mismatch"

    return st.one_of(
        random_bytes(), invalid_utf8(), deep_nesting(), too_deep_to_carry(), time_not_carried(),
        huge_string(), wrong_type(), missing_identifier(), future_timestamp(), unknown_type(),
        other_channel(),
    )  # fmt: skip


def generate(
    count: int, *, max_bytes: int, wire_bytes: int = 1_048_000, huge_every: int = 200,
    batch: int = 5,
) -> list[Bad]:  # fmt: skip
    """`count` malformed messages drawn by Hypothesis (derandomized: the same every run).

    Messages over the size limit are heavy (up to three times `max_bytes`, never over
    `wire_bytes`); only one in `huge_every` may be one, the others are drawn again, and only
    the kept ones are filled up to their size. Each Hypothesis example is a list of `batch`
    messages, which saves most of Hypothesis's cost per example.
    """
    now = datetime.now(UTC)
    out: list[Bad] = []
    heavy = 0

    def keep(batch: list[Bad]) -> None:
        nonlocal heavy
        for bad in batch:
            if len(out) >= count:
                return
            if bad[3] == "too_large":
                if heavy * huge_every > len(out):
                    continue
                heavy += 1
                topic, key, value, kind = bad
                bad = topic, key, _filled(value or b""), kind
            out.append(bad)

    drawn = st.lists(strategy(now, max_bytes, wire_bytes), min_size=batch, max_size=batch)
    rounds = 0
    while len(out) < count:
        before = len(out)
        seed(rounds)(
            settings(
                max_examples=-(-(count - len(out)) // batch), database=None, deadline=None,
                phases=[Phase.generate], suppress_health_check=list(HealthCheck),
            )(given(drawn)(keep))
        )()  # fmt: skip
        rounds += 1
        if len(out) == before:
            raise RuntimeError("Hypothesis produced no new malformed messages")
    return out


def kinds(bad: list[Bad]) -> dict[str, int]:
    """How many messages of each expected kind."""
    out: dict[str, int] = {}
    for *_, kind in bad:
        out[kind] = out.get(kind, 0) + 1
    return dict(sorted(out.items()))
