"""Decoding and validation of one inbound Kafka message: a wire model, or why it was rejected.

Checks run in this order, and the first that fails decides the dead letter's `error.kind`:

1. value is None or empty                                   -> decode
2. value longer than `max_bytes`                            -> too_large
3. not UTF-8, not JSON, nested deeper than orjson parses
   (1024 levels), or JSON but not an object                 -> decode
3b. nested deeper than MAX_DEPTH levels                     -> validation, the top-level field
4. `type` (`command`) missing or not a string               -> validation, field `type`
5. `type` (`command`) a string naming no known type         -> unknown_type, field `type`
6. the model's schema                                       -> validation, fields = every error's
                                                               dotted location
7. stated `channel` differs from the topic's, or `type` is
   not carried by the topic's channel                       -> channel_mismatch
8. `occurred_at` (`requested_at`) over 5 minutes after now  -> future_timestamp

No function here raises for any value: every input ends as a model or a `Rejection`.
"""

import base64
import codecs
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar, get_args

import orjson
from pydantic import BaseModel, ValidationError

from processor.events import (
    CHANNELS_OF,
    Channel,
    CommandName,
    ControlCommand,
    EventType,
    Touchpoint,
    fast_wire,
)
from processor.messages import DeadLetter, DeadLetterError, DeadLetterSource, ErrorKind

# Producers' clocks drift; five minutes is the contract's tolerance.
MAX_CLOCK_SKEW = timedelta(minutes=5)
#: The deepest nesting of objects and arrays an event may have (the event object is level 1).
#: The product writes every event again (internally, in dead letters), and orjson writes at
#: most 255 levels; no contract field needs more than 3.
MAX_DEPTH = 32

_EVENT_TYPES = frozenset(t.value for t in EventType)
_COMMANDS = frozenset(get_args(CommandName))
M = TypeVar("M", bound=BaseModel)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Offending values are quoted in messages; a 1 MB `type` must not make a 1 MB message.
_QUOTE_CHARS = 64
_JSON_KINDS = {list: "an array", str: "a string", int: "a number", float: "a number"}


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a message cannot be processed; becomes the dead letter's `error`."""

    kind: ErrorKind
    message: str
    fields: tuple[str, ...] = ()


_EMPTY = Rejection(ErrorKind.decode, "value is empty")


def decode_touchpoint(
    value: bytes | None, channel: Channel, now: datetime, *, max_bytes: int
) -> Touchpoint | Rejection:
    """Decode a message from the `touchpoints.<channel>` topic; `now` must be timezone-aware.

    The returned touchpoint always has `channel` set, to the topic's channel when the event
    did not state one.
    """
    _require_aware(now)
    try:
        return _decode_touchpoint(value, channel, now, max_bytes)
    except Exception as exc:
        return _unforeseen(exc)


def check_touchpoint(
    value: bytes | None, channel: Channel, now: datetime, *, max_bytes: int
) -> dict[str, Any] | Rejection:
    """`decode_touchpoint`'s verdict, a valid event in the form ingest sends it on (its
    touchpoint's `wire()`), made without the model for most events (`fast_wire`)."""
    _require_aware(now)
    try:
        return _check_touchpoint(value, channel, now, max_bytes)
    except Exception as exc:
        return _unforeseen(exc)


def _unforeseen(exc: Exception) -> Rejection:
    # Last resort, never expected: an input this code did not foresee must become a dead
    # letter, not an exception that stops the partition and replays the same poison message
    # forever.
    return Rejection(ErrorKind.validation, f"unexpected {type(exc).__name__} in validation")


def decode_control(
    value: bytes | None, now: datetime, *, max_bytes: int
) -> ControlCommand | Rejection:
    """Decode a message from `journey.control`; `now` must be timezone-aware."""
    _require_aware(now)
    try:
        return _decode_control(value, now, max_bytes)
    except Exception as exc:
        return _unforeseen(exc)


def _touchpoint_data(
    value: bytes | None, channel: Channel, max_bytes: int
) -> dict[str, Any] | Rejection:
    data = _parse_object(value, max_bytes)
    if isinstance(data, Rejection):
        return data
    rejected = _check_name(data, "type", _EVENT_TYPES, "event type")
    if rejected is not None:
        return rejected
    # The parsed dict is ours alone, so filling in the implied channel costs no copy; a
    # stated channel is kept and compared (`_arrived`).
    if data.get("channel") is None:
        data["channel"] = channel.value
    return data


def _arrived(
    event_type: EventType, stated: Channel | None, channel: Channel, at: datetime, now: datetime
) -> Rejection | None:
    """Why a valid event cannot be taken from this channel's topic at `now`, if it cannot."""
    if stated is not channel:
        return Rejection(
            ErrorKind.channel_mismatch,
            f"channel: the event states {stated} but arrived on the {channel} topic",
            ("channel",),
        )
    if channel not in CHANNELS_OF[event_type]:
        return Rejection(
            ErrorKind.channel_mismatch,
            f"type: {event_type} does not arrive on the {channel} topic",
            ("type",),
        )
    return _future(at, "occurred_at", now)


def _decode_touchpoint(
    value: bytes | None, channel: Channel, now: datetime, max_bytes: int
) -> Touchpoint | Rejection:
    data = _touchpoint_data(value, channel, max_bytes)
    if isinstance(data, Rejection):
        return data
    touchpoint = _validate(Touchpoint, data)
    if isinstance(touchpoint, Rejection):
        return touchpoint
    rejected = _arrived(touchpoint.type, touchpoint.channel, channel, touchpoint.occurred_at, now)
    return touchpoint if rejected is None else rejected


def _check_touchpoint(
    value: bytes | None, channel: Channel, now: datetime, max_bytes: int
) -> dict[str, Any] | Rejection:
    data = _touchpoint_data(value, channel, max_bytes)
    if isinstance(data, Rejection):
        return data
    wire = fast_wire(data)
    if wire is None:  # invalid, or one that only the model settles
        touchpoint = _validate(Touchpoint, data)
        if isinstance(touchpoint, Rejection):
            return touchpoint
        wire = touchpoint.wire()
    rejected = _arrived(wire["type"], wire["channel"], channel, wire["occurred_at"], now)
    return wire if rejected is None else rejected


def _decode_control(
    value: bytes | None, now: datetime, max_bytes: int
) -> ControlCommand | Rejection:
    data = _parse_object(value, max_bytes)
    if isinstance(data, Rejection):
        return data
    rejected = _check_name(data, "command", _COMMANDS, "command")
    if rejected is not None:
        return rejected
    command = _validate(ControlCommand, data)
    if isinstance(command, Rejection):
        return command
    # A far-future requested_at would let an erasure outrank everything after it.
    rejected = _future(command.requested_at, "requested_at", now)
    return command if rejected is None else rejected


def _require_aware(now: datetime) -> None:
    # A naive clock is the caller's bug, not the message's: raising here keeps it from
    # dead-lettering every event through the last-resort handler.
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")


def _parse_object(value: bytes | None, max_bytes: int) -> dict[str, Any] | Rejection:
    if not value:
        return _EMPTY
    if len(value) > max_bytes:
        return Rejection(
            ErrorKind.too_large, f"value is {len(value)} bytes, over the limit of {max_bytes}"
        )
    try:
        # orjson checks UTF-8 itself, so the happy path decodes the bytes exactly once.
        data = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        return Rejection(ErrorKind.decode, _why_not_json(value, exc))
    if not isinstance(data, dict):
        kind = "null" if data is None else _JSON_KINDS.get(type(data), "a boolean")
        return Rejection(ErrorKind.decode, f"value is {kind}, not a JSON object")
    # Counting brackets is a byte scan; only a value with that many can be nested that deep.
    if value.count(b"{") + value.count(b"[") > MAX_DEPTH:
        for field, inner in data.items():
            if _deeper_than(inner, MAX_DEPTH - 1):
                return Rejection(
                    ErrorKind.validation,
                    f"{field[:_QUOTE_CHARS]}: nested deeper than {MAX_DEPTH} levels",
                    (field[:_QUOTE_CHARS],),
                )
    return data


def _deeper_than(value: object, levels: int) -> bool:
    """Does `value` nest objects and arrays more than `levels` deep (a scalar is 0)?"""
    todo: list[tuple[object, int]] = [(value, 1)]
    while todo:
        item, depth = todo.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > levels:
            return True
        todo.extend((child, depth + 1) for child in children)
    return False


def _why_not_json(value: bytes, exc: orjson.JSONDecodeError) -> str:
    # Only on the rejection path: tell ops whether the bytes or the JSON were wrong.
    try:
        value.decode("utf-8")
    except UnicodeDecodeError as bad:
        return f"value is not UTF-8: invalid byte at offset {bad.start}"
    return f"value is not JSON: {exc}"


def _check_name(
    data: dict[str, Any], field: str, known: frozenset[str], what: str
) -> Rejection | None:
    # Checked before the schema so that an unknown type is reported as unknown_type (a
    # producer ahead of this processor) rather than as a wall of schema errors.
    name = data.get(field)
    if not isinstance(name, str):
        reason = "Field required" if field not in data else "Input should be a valid string"
        return Rejection(ErrorKind.validation, f"{field}: {reason}", (field,))
    if name not in known:
        return Rejection(
            ErrorKind.unknown_type, f"{field}: unknown {what} {name[:_QUOTE_CHARS]!r}", (field,)
        )
    return None


def _validate(model: type[M], data: dict[str, Any]) -> M | Rejection:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False, include_input=False)
    locations = [".".join(str(part) for part in error["loc"]) or "value" for error in errors]
    return Rejection(
        ErrorKind.validation,
        f"{locations[0]}: {errors[0]['msg']}",
        tuple(dict.fromkeys(locations)),
    )


def _future(at: datetime, field: str, now: datetime) -> Rejection | None:
    if at > now + MAX_CLOCK_SKEW:
        return Rejection(
            ErrorKind.future_timestamp,
            f"{field}: {at.isoformat()} is more than 5 minutes after now ({now.isoformat()})",
            (field,),
        )
    return None


def dead_letter(
    rejection: Rejection,
    *,
    value: bytes | None,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    timestamp_ms: int | None,
    now: datetime,
    keep_bytes: int,
) -> DeadLetter:
    """The contract's dead letter for a rejected message, replayable from its source coordinates.

    A too_large value keeps only its first `keep_bytes` bytes (`raw_truncated`): the whole
    value could not be re-published anyway, and replay reads it from the source topic.
    """
    original = value or b""
    truncated = rejection.kind is ErrorKind.too_large and len(original) > keep_bytes
    raw, raw_encoding = _text_or_base64(original[:keep_bytes] if truncated else original, truncated)
    key_text, key_encoding = (None, "utf-8") if key is None else _text_or_base64(key, False)
    return DeadLetter(
        source=DeadLetterSource(
            topic=topic,
            partition=partition,
            offset=offset,
            key=key_text,
            key_encoding=key_encoding,
            timestamp=_rfc3339_from_ms(timestamp_ms),
        ),
        raw=raw,
        raw_encoding=raw_encoding,
        raw_truncated=truncated,
        raw_size=len(original),
        error=DeadLetterError(
            kind=rejection.kind, message=rejection.message, fields=list(rejection.fields)
        ),
        dead_lettered_at=now,
    )


def _text_or_base64(data: bytes, prefix: bool) -> tuple[str, Literal["utf-8", "base64"]]:
    try:
        if prefix:
            # A cut can split the last character; the incremental decoder holds back those
            # trailing bytes instead of calling the whole prefix binary.
            return codecs.getincrementaldecoder("utf-8")().decode(data, final=False), "utf-8"
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(data).decode("ascii"), "base64"


def _rfc3339_from_ms(timestamp_ms: int | None) -> str | None:
    # Kafka reports "no timestamp" as -1 (or None, depending on the client).
    if timestamp_ms is None or timestamp_ms < 0:
        return None
    try:
        at = _EPOCH + timedelta(milliseconds=timestamp_ms)
    except OverflowError:
        return None
    seconds = at.strftime("%Y-%m-%dT%H:%M:%S")
    millis = timestamp_ms % 1000
    return f"{seconds}.{millis:03d}Z" if millis else f"{seconds}Z"
