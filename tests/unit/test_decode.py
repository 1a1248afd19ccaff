"""decode_touchpoint, decode_control and dead_letter: every error kind, and never an exception."""

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from processor.decode import Rejection, dead_letter, decode_control, decode_touchpoint
from processor.events import CHANNELS_OF, Channel, ControlCommand, EventType, Touchpoint
from processor.messages import ErrorKind, to_json

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
NOW_MS = 1795348800000
LIMIT = 64 * 1024

# The smallest valid properties of every type: exactly its required (*) properties.
MINIMAL: dict[EventType, dict[str, Any]] = {
    EventType.page_view: {},
    EventType.product_view: {"product_id": "P-9"},
    EventType.search: {},
    EventType.cart_add: {"product_id": "P-9"},
    EventType.cart_remove: {"product_id": "P-9"},
    EventType.checkout_start: {},
    EventType.order_placed: {"order_id": "O-1", "value": 0},
    EventType.signup: {},
    EventType.login: {},
    EventType.newsletter_subscribe: {},
    EventType.review_submitted: {"rating": 1},
    EventType.survey_response: {"nps": 0},
    EventType.consent_updated: {"consent": {}},
    EventType.email_delivered: {"campaign_id": "fall-24"},
    EventType.email_opened: {"campaign_id": "fall-24"},
    EventType.email_clicked: {"campaign_id": "fall-24"},
    EventType.email_bounced: {"bounce_type": "soft"},
    EventType.email_unsubscribed: {},
    EventType.email_complained: {},
    EventType.store_visit: {"store_id": "S-12"},
    EventType.consultation: {"store_id": "S-12"},
    EventType.pos_purchase: {"store_id": "S-12", "order_id": "O-1", "value": 12.5},
    EventType.product_return: {"order_id": "O-1"},
    EventType.loyalty_signup: {"loyalty_id": "L-555"},
}

REQUIRED = [(t, name) for t, props in MINIMAL.items() for name in props]


def event(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "event_id": "e-1",
        "type": "cart_add",
        "occurred_at": "2026-11-22T12:00:00Z",
        "identity": {"customer_id": "C-1001"},
        "properties": {"product_id": "P-9"},
    }
    base.update(overrides)
    return base


def decode(data: object, channel: Channel = Channel.web) -> Touchpoint | Rejection:
    return decode_touchpoint(orjson.dumps(data), channel, NOW, max_bytes=LIMIT)


def home(event_type: EventType) -> Channel:
    return sorted(CHANNELS_OF[event_type])[0]


def test_minimal_covers_every_type() -> None:
    assert set(MINIMAL) == set(EventType)


@pytest.mark.parametrize("event_type", list(EventType))
def test_minimal_event_of_every_type_is_accepted(event_type: EventType) -> None:
    result = decode(event(type=event_type.value, properties=MINIMAL[event_type]), home(event_type))
    assert isinstance(result, Touchpoint)
    assert result.type is event_type
    assert result.channel is home(event_type)
    assert result.properties == MINIMAL[event_type]


@pytest.mark.parametrize(("event_type", "name"), REQUIRED)
def test_each_required_property_missing_is_a_validation_error(
    event_type: EventType, name: str
) -> None:
    properties = {k: v for k, v in MINIMAL[event_type].items() if k != name}
    result = decode(event(type=event_type.value, properties=properties), home(event_type))
    assert result == Rejection(
        ErrorKind.validation, f"properties.{name}: Field required", (f"properties.{name}",)
    )


def test_contract_example_decodes() -> None:
    result = decode(
        {
            "event_id": "7f9c2b1e-4a8d-4a0e-9a51-2d8f5c3e1b90",
            "type": "cart_add",
            "occurred_at": "2026-11-22T12:00:00Z",
            "identity": {
                "customer_id": "C-1001",
                "anonymous_id": "ck-77f",
                "email": "ana@example.com",
                "loyalty_id": "L-555",
            },
            "context": {"timezone": "Europe/Berlin", "store_id": "S-12"},
            "properties": {"product_id": "P-9", "quantity": 1, "price": 12.5, "currency": "EUR"},
        }
    )
    assert isinstance(result, Touchpoint)
    assert result.identity.identifiers()[0] == ("customer_id", "C-1001")


# --- decode -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "value is empty"),
        (b"", "value is empty"),
        (b'{"type": "\xff"}', "value is not UTF-8: invalid byte at offset 10"),
        (b"\xed\xa0\x80{}", "value is not UTF-8: invalid byte at offset 0"),
        (
            b"{not json",
            "value is not JSON: unexpected character, expected a string key: line 1 column 2 "
            "(char 1)",
        ),
        (b"[1, 2]", "value is an array, not a JSON object"),
        (b'"cart_add"', "value is a string, not a JSON object"),
        (b"42", "value is a number, not a JSON object"),
        (b"true", "value is a boolean, not a JSON object"),
        (b"null", "value is null, not a JSON object"),
        (
            b"[" * 10_000 + b"]" * 10_000,
            "value is not JSON: depth limit exceeded: line 1 column 1026 (char 1025)",
        ),
        (
            b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
            "value is not JSON: depth limit exceeded: line 1 column 5122 (char 5121)",
        ),
    ],
)
def test_decode_errors(value: bytes | None, message: str) -> None:
    assert decode_touchpoint(value, Channel.web, NOW, max_bytes=LIMIT * 4) == Rejection(
        ErrorKind.decode, message
    )


def test_too_large_is_checked_before_parsing() -> None:
    value = b"\xff" * 101
    assert decode_touchpoint(value, Channel.web, NOW, max_bytes=100) == Rejection(
        ErrorKind.too_large, "value is 101 bytes, over the limit of 100"
    )


def test_value_of_exactly_max_bytes_is_accepted() -> None:
    value = orjson.dumps(event())
    assert isinstance(decode_touchpoint(value, Channel.web, NOW, max_bytes=len(value)), Touchpoint)


# --- type ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "rejection"),
    [
        (
            {"event_id": "e-1"},
            Rejection(ErrorKind.validation, "type: Field required", ("type",)),
        ),
        (
            event(type=5),
            Rejection(ErrorKind.validation, "type: Input should be a valid string", ("type",)),
        ),
        (
            event(type="cart_explode"),
            Rejection(ErrorKind.unknown_type, "type: unknown event type 'cart_explode'", ("type",)),
        ),
        (
            event(type="x" * 10_000),
            Rejection(ErrorKind.unknown_type, f"type: unknown event type '{'x' * 64}'", ("type",)),
        ),
    ],
)
def test_type_checks(data: dict[str, Any], rejection: Rejection) -> None:
    assert decode(data) == rejection


# --- validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "rejection"),
    [
        (
            event(identity={"anonymous_id": ""}),
            Rejection(
                ErrorKind.validation, "identity: at least one identifier is required", ("identity",)
            ),
        ),
        (
            event(occurred_at="2026-11-22T12:00:00"),
            Rejection(
                ErrorKind.validation,
                "occurred_at: Input should be an RFC 3339 date-time with an offset or Z",
                ("occurred_at",),
            ),
        ),
        (
            event(event_id="e" * 129),
            Rejection(
                ErrorKind.validation,
                "event_id: String should have at most 128 characters",
                ("event_id",),
            ),
        ),
        (
            event(properties={"product_id": ["P-9"]}),
            Rejection(
                ErrorKind.validation,
                "properties.product_id: Input should be a valid string",
                ("properties.product_id",),
            ),
        ),
        (
            event(channel="sms"),
            Rejection(
                ErrorKind.validation,
                "channel: Input should be 'web', 'email' or 'store'",
                ("channel",),
            ),
        ),
        (
            # Every error is named; the message quotes the first.
            {"type": "order_placed", "identity": {}, "properties": {"value": -1}},
            Rejection(
                ErrorKind.validation,
                "event_id: Field required",
                (
                    "event_id",
                    "occurred_at",
                    "identity",
                    "properties.order_id",
                    "properties.value",
                ),
            ),
        ),
    ],
)
def test_validation_errors(data: dict[str, Any], rejection: Rejection) -> None:
    assert decode(data) == rejection


def test_absent_properties_still_need_the_required_ones() -> None:
    data = {k: v for k, v in event(type="product_view").items() if k != "properties"}
    assert decode(data) == Rejection(
        ErrorKind.validation, "properties.product_id: Field required", ("properties.product_id",)
    )
    login = {k: v for k, v in event(type="login").items() if k != "properties"}
    result = decode(login)
    assert isinstance(result, Touchpoint)
    assert result.properties == {}


def test_event_id_of_128_chars_is_accepted() -> None:
    assert isinstance(decode(event(event_id="e" * 128)), Touchpoint)


def test_decoded_event_normalises_email_and_keeps_extras() -> None:
    result = decode(
        event(
            identity={"email": " Ana@Example.com "},
            context={"timezone": "UTC", "page": "/cart"},
            properties={"product_id": "P-9", "variant": "blue"},
            sdk="tracker/2",
        )
    )
    assert isinstance(result, Touchpoint)
    assert result.identity.email == "ana@example.com"
    assert result.context.model_extra == {"page": "/cart"}
    assert result.properties == {"product_id": "P-9", "variant": "blue"}
    assert "sdk" not in result.model_dump()


# --- channel ------------------------------------------------------------------------------


def test_stated_channel_must_match_the_topic() -> None:
    assert decode(event(channel="email")) == Rejection(
        ErrorKind.channel_mismatch,
        "channel: the event states email but arrived on the web topic",
        ("channel",),
    )


def test_type_must_belong_to_the_topic() -> None:
    data = event(type="email_opened", properties={"campaign_id": "fall-24"})
    assert decode(data, Channel.web) == Rejection(
        ErrorKind.channel_mismatch,
        "type: email_opened does not arrive on the web topic",
        ("type",),
    )
    assert decode(event(), Channel.store) == Rejection(
        ErrorKind.channel_mismatch, "type: cart_add does not arrive on the store topic", ("type",)
    )


def test_shared_types_are_accepted_on_both_topics() -> None:
    data = event(type="survey_response", properties={"nps": 10})
    for channel in (Channel.web, Channel.email):
        result = decode(data, channel)
        assert isinstance(result, Touchpoint)
        assert result.channel is channel


def test_stated_matching_channel_is_accepted() -> None:
    result = decode(event(channel="web"))
    assert isinstance(result, Touchpoint)
    assert result.channel is Channel.web


# --- future timestamps --------------------------------------------------------------------


def test_five_minutes_ahead_is_accepted() -> None:
    result = decode(event(occurred_at="2026-11-22T12:05:00Z"))
    assert isinstance(result, Touchpoint)


def test_over_five_minutes_ahead_is_rejected() -> None:
    assert decode(event(occurred_at="2026-11-22T13:05:01+01:00")) == Rejection(
        ErrorKind.future_timestamp,
        "occurred_at: 2026-11-22T13:05:01+01:00 is more than 5 minutes after now "
        "(2026-11-22T12:00:00+00:00)",
        ("occurred_at",),
    )


def test_naive_now_is_a_caller_bug() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        decode_touchpoint(b"{}", Channel.web, datetime(2026, 11, 22), max_bytes=LIMIT)  # noqa: DTZ001


# --- control ------------------------------------------------------------------------------

COMMAND = {
    "command": "erase_customer",
    "customer_id": "C-1001",
    "requested_at": "2026-11-22T12:00:00Z",
    "request_id": "r-1",
}


def control(data: object) -> ControlCommand | Rejection:
    return decode_control(orjson.dumps(data), NOW, max_bytes=LIMIT)


def test_control_command_decodes() -> None:
    assert control(COMMAND) == ControlCommand(
        command="erase_customer",
        customer_id="C-1001",
        requested_at=NOW,
        request_id="r-1",
    )


@pytest.mark.parametrize(
    ("data", "rejection"),
    [
        (
            {**COMMAND, "command": "forget"},
            Rejection(ErrorKind.unknown_type, "command: unknown command 'forget'", ("command",)),
        ),
        (
            {k: v for k, v in COMMAND.items() if k != "command"},
            Rejection(ErrorKind.validation, "command: Field required", ("command",)),
        ),
        (
            {**COMMAND, "customer_id": ""},
            Rejection(
                ErrorKind.validation,
                # Blank counts as absent, and then the command names nobody.
                "value: exactly one of customer_id, email, loyalty_id, anonymous_id is required",
                ("value",),
            ),
        ),
        (
            {**COMMAND, "requested_at": "2026-11-22T12:05:01Z"},
            Rejection(
                ErrorKind.future_timestamp,
                "requested_at: 2026-11-22T12:05:01+00:00 is more than 5 minutes after now "
                "(2026-11-22T12:00:00+00:00)",
                ("requested_at",),
            ),
        ),
        ([COMMAND], Rejection(ErrorKind.decode, "value is an array, not a JSON object")),
    ],
)
def test_control_rejections(data: object, rejection: Rejection) -> None:
    assert control(data) == rejection


def test_control_too_large() -> None:
    assert decode_control(b"{}" * 10, NOW, max_bytes=19) == Rejection(
        ErrorKind.too_large, "value is 20 bytes, over the limit of 19"
    )


# --- dead letters -------------------------------------------------------------------------

INVALID = Rejection(
    ErrorKind.validation, "identity: at least one identifier is required", ("identity",)
)


def letter(rejection: Rejection = INVALID, **overrides: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "value": b'{"type":"login"}',
        "topic": "touchpoints.web",
        "partition": 3,
        "offset": 1042,
        "key": b"ck-77f",
        "timestamp_ms": NOW_MS,
        "now": NOW + timedelta(seconds=1),
        "keep_bytes": 16,
    }
    arguments.update(overrides)
    result: dict[str, Any] = orjson.loads(to_json(dead_letter(rejection, **arguments)))
    return result


def test_dead_letter_of_a_utf8_value() -> None:
    assert letter() == {
        "source": {
            "topic": "touchpoints.web",
            "partition": 3,
            "offset": 1042,
            "key": "ck-77f",
            "key_encoding": "utf-8",
            "timestamp": "2026-11-22T12:00:00Z",
        },
        "raw": '{"type":"login"}',
        "raw_encoding": "utf-8",
        "raw_truncated": False,
        "raw_size": 16,
        "error": {
            "kind": "validation",
            "message": "identity: at least one identifier is required",
            "fields": ["identity"],
        },
        "dead_lettered_at": "2026-11-22T12:00:01Z",
    }


def test_dead_letter_of_binary_value_is_base64() -> None:
    result = letter(Rejection(ErrorKind.decode, "value is not UTF-8"), value=b"\xff\xfe\x00")
    assert (result["raw"], result["raw_encoding"], result["raw_size"]) == ("//4A", "base64", 3)
    assert result["raw_truncated"] is False


def test_dead_letter_of_an_empty_value() -> None:
    result = letter(Rejection(ErrorKind.decode, "value is empty"), value=None)
    assert (result["raw"], result["raw_encoding"], result["raw_size"]) == ("", "utf-8", 0)


def test_too_large_keeps_a_prefix() -> None:
    value = b'{"blob":"' + b"x" * 1000 + b'"}'
    result = letter(Rejection(ErrorKind.too_large, "too big"), value=value, keep_bytes=12)
    assert result["raw"] == '{"blob":"xxx'
    assert (result["raw_encoding"], result["raw_truncated"], result["raw_size"]) == (
        "utf-8",
        True,
        1011,
    )


def test_too_large_cut_inside_a_character_stays_text() -> None:
    value = "é".encode() * 10
    result = letter(Rejection(ErrorKind.too_large, "too big"), value=value, keep_bytes=5)
    assert (result["raw"], result["raw_encoding"], result["raw_size"]) == ("éé", "utf-8", 20)


def test_too_large_binary_prefix_is_base64() -> None:
    result = letter(Rejection(ErrorKind.too_large, "too big"), value=b"\xff" * 40, keep_bytes=3)
    assert (result["raw"], result["raw_encoding"], result["raw_truncated"]) == (
        "////",
        "base64",
        True,
    )


def test_only_too_large_is_truncated() -> None:
    value = b"x" * 40
    result = letter(Rejection(ErrorKind.decode, "not JSON"), value=value, keep_bytes=3)
    assert (result["raw"], result["raw_truncated"]) == ("x" * 40, False)


@pytest.mark.parametrize(
    ("key", "expected", "encoding"),
    [
        (None, None, "utf-8"),
        (b"", "", "utf-8"),
        (b"C-1001", "C-1001", "utf-8"),
        (b"\xff", "/w==", "base64"),
    ],
)
def test_dead_letter_key(key: bytes | None, expected: str | None, encoding: str) -> None:
    source = letter(key=key)["source"]
    assert (source["key"], source["key_encoding"]) == (expected, encoding)


@pytest.mark.parametrize(
    ("timestamp_ms", "expected"),
    [
        (None, None),
        (-1, None),
        (0, "1970-01-01T00:00:00Z"),
        (NOW_MS + 123, "2026-11-22T12:00:00.123Z"),
        (NOW_MS + 5, "2026-11-22T12:00:00.005Z"),
        (10**18, None),
    ],
)
def test_dead_letter_timestamp(timestamp_ms: int | None, expected: str | None) -> None:
    assert letter(timestamp_ms=timestamp_ms)["source"]["timestamp"] == expected


# --- never raises -------------------------------------------------------------------------


def _containers(children: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    return st.lists(children, max_size=4) | st.dictionaries(
        st.text(max_size=10), children, max_size=4
    )


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    _containers,
    max_leaves=20,
)
timestamps = st.datetimes(
    min_value=datetime(2000, 1, 1),  # noqa: DTZ001 - hypothesis wants naive bounds
    max_value=datetime(2100, 1, 1),  # noqa: DTZ001
    timezones=st.sampled_from([UTC, timezone(timedelta(hours=-11)), timezone(timedelta(hours=14))]),
).map(datetime.isoformat)
identities = st.dictionaries(
    st.sampled_from(["customer_id", "email", "loyalty_id", "anonymous_id"]),
    st.text(max_size=5) | json_values,
)
contexts = st.dictionaries(
    st.sampled_from(["timezone", "locale", "store_id", "x"]),
    st.sampled_from(["UTC", "Europe/Berlin", "Nowhere/Land"]) | json_values,
)


@st.composite
def touchpoint_like(draw: st.DrawFn) -> dict[str, Any]:
    """A valid event of any type, with some fields and properties replaced by anything."""
    event_type = draw(st.sampled_from(list(EventType)))
    data = event(
        type=event_type.value,
        occurred_at=draw(timestamps),
        identity=draw(st.just({"customer_id": "C-1001"}) | identities),
        context=draw(st.just({}) | contexts),
        properties=dict(MINIMAL[event_type]),
        channel=draw(st.sampled_from([None, "web", "email", "store", "sms"])),
    )
    for name in draw(
        st.sets(st.sampled_from(sorted(MINIMAL[event_type]) or ["extra"]), max_size=1)
    ):
        data["properties"][name] = draw(json_values)
    for name in draw(st.sets(st.sampled_from(sorted(data)), max_size=1)):
        data[name] = draw(json_values)
    return data


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=st.binary(max_size=200), channel=st.sampled_from(list(Channel)))
def test_arbitrary_bytes_never_raise(value: bytes, channel: Channel) -> None:
    result = decode_touchpoint(value, channel, NOW, max_bytes=150)
    assert isinstance(result, Touchpoint | Rejection)
    assert isinstance(decode_control(value, NOW, max_bytes=150), ControlCommand | Rejection)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=json_values | touchpoint_like(), channel=st.sampled_from(list(Channel)))
def test_arbitrary_json_never_raises(data: object, channel: Channel) -> None:
    value = orjson.dumps(data)
    result = decode_touchpoint(value, channel, NOW, max_bytes=LIMIT)
    assert isinstance(result, Touchpoint | Rejection)
    if isinstance(result, Rejection):
        letter = dead_letter(
            result,
            value=value,
            topic="touchpoints.web",
            partition=0,
            offset=0,
            key=None,
            timestamp_ms=None,
            now=NOW,
            keep_bytes=LIMIT,
        )
        assert orjson.loads(to_json(letter))["raw"] == value.decode()


# -- the contract's limits and the edge cases it decides -------------------------------------


def _nested(levels: int) -> object:
    """A value nesting `levels` objects and arrays (1: `{}`)."""
    value: object = {}
    for n in range(levels - 1):
        value = [value] if n % 2 else {"a": value}
    return value


def test_nesting_up_to_the_limit_is_accepted_and_can_be_written_again() -> None:
    from processor.decode import MAX_DEPTH

    # The event object is level 1 and `properties` level 2, so its value nests MAX_DEPTH - 1.
    props = {"product_id": "P-9", "deep": _nested(MAX_DEPTH - 2)}
    result = decode(event(properties=props))
    assert isinstance(result, Touchpoint)
    # Ingest writes every event again: that must work for anything it accepts.
    assert orjson.loads(orjson.dumps(result.model_dump(mode="json")))["properties"] == props


@pytest.mark.parametrize("levels", [32, 254, 255, 600, 1020])
def test_nesting_over_the_limit_is_a_validation_error_naming_it(levels: int) -> None:
    from processor.decode import MAX_DEPTH

    # Written by hand: orjson (like the producer here) writes at most 254 levels.
    deep = b'{"a":[' * (levels // 2) + b"{}" * (levels % 2) + b"]}" * (levels // 2)
    raw = orjson.dumps(event(properties={"product_id": "P-9", "deep": 0})).replace(
        b'"deep":0', b'"deep":' + deep
    )
    result = decode_touchpoint(raw, Channel.web, NOW, max_bytes=LIMIT)
    assert result == Rejection(
        ErrorKind.validation, f"properties: nested deeper than {MAX_DEPTH} levels", ("properties",)
    )


def test_nesting_past_what_json_parsing_allows_is_a_decode_error() -> None:
    raw = b'{"a":' * 1100 + b"1" + b"}" * 1100
    result = decode_touchpoint(raw, Channel.web, NOW, max_bytes=LIMIT)
    assert isinstance(result, Rejection)
    assert result.kind is ErrorKind.decode


@pytest.mark.parametrize(
    "at",
    [
        "2026-11-22T12:00Z",  # no seconds
        "2026-11-22T12:00:00+0100",  # offset without a colon
        "2026-11-22T12:00:00",  # no offset
        "2026-11-22",
        "1795348800",
        "2026-11-22T12:00:00+01",
    ],
)
def test_occurred_at_must_be_rfc_3339(at: str) -> None:
    result = decode(event(occurred_at=at))
    assert isinstance(result, Rejection), at
    assert (result.kind, result.fields) == (ErrorKind.validation, ("occurred_at",))


@pytest.mark.parametrize(
    ("at", "utc"),
    [
        ("2026-11-22 12:00:00Z", "2026-11-22T12:00:00+00:00"),
        ("2026-11-22t13:00:00.5+01:00", "2026-11-22T12:00:00.500000+00:00"),
        ("0001-01-01T00:00:00-14:00", "0001-01-01T14:00:00+00:00"),
    ],
)
def test_rfc_3339_forms_are_accepted(at: str, utc: str) -> None:
    result = decode(event(occurred_at=at))
    assert isinstance(result, Touchpoint)
    assert result.occurred_at.astimezone(UTC).isoformat() == utc


def test_a_time_before_year_one_in_utc_is_a_validation_error() -> None:
    assert decode(event(occurred_at="0001-01-01T00:00:00+14:00")) == Rejection(
        ErrorKind.validation,
        "occurred_at: Input lies outside years 1 to 9999 once moved to UTC",
        ("occurred_at",),
    )


def test_numeric_strings_are_accepted_as_numbers() -> None:
    result = decode(event(properties={"product_id": "P-9", "price": "12.50", "quantity": "2"}))
    assert isinstance(result, Touchpoint)
    assert result.properties == {"product_id": "P-9", "price": 12.5, "quantity": 2}
    review = decode(event(type="review_submitted", properties={"rating": "5"}))
    assert isinstance(review, Touchpoint)
    assert review.properties == {"rating": 5}
    wrong = decode(event(properties={"product_id": "P-9", "price": "twelve"}))
    assert isinstance(wrong, Rejection)
    assert wrong.fields == ("properties.price",)


def test_integer_identifiers_are_their_decimal_strings() -> None:
    result = decode(event(identity={"customer_id": 42, "loyalty_id": 5512}))
    assert isinstance(result, Touchpoint)
    assert (result.identity.customer_id, result.identity.loyalty_id) == ("42", "5512")
    boolean = decode(event(identity={"customer_id": True}))
    assert isinstance(boolean, Rejection)
    assert boolean.kind is ErrorKind.validation
    command = decode_control(
        orjson.dumps({"command": "erase_customer", "customer_id": 42,
                      "requested_at": "2026-11-22T11:00:00Z", "request_id": "r-1"}),
        NOW, max_bytes=LIMIT,
    )  # fmt: skip
    assert isinstance(command, ControlCommand)
    assert command.customer_id == "42"


def test_emails_match_after_nfc_trimming_and_case_folding() -> None:
    composed = decode(event(identity={"email": " Ana.Müller+News@Example.COM "}))
    decomposed = decode(event(identity={"email": "ana.mu\u0308ller+news@example.com"}))
    assert isinstance(composed, Touchpoint)
    assert isinstance(decomposed, Touchpoint)
    # Dots and +tags stay: no provider rules.
    assert composed.identity.email == decomposed.identity.email == "ana.müller+news@example.com"


def test_blank_identifiers_are_absent() -> None:
    result = decode(event(identity={"customer_id": " ", "email": "\t", "anonymous_id": "ck-1"}))
    assert isinstance(result, Touchpoint)
    assert result.identity.identifiers() == [("anonymous_id", "ck-1")]
    none_left = decode(event(identity={"customer_id": "", "email": "  ", "loyalty_id": None}))
    assert none_left == Rejection(
        ErrorKind.validation, "identity: at least one identifier is required", ("identity",)
    )


@pytest.mark.parametrize(
    ("named", "customer"),
    [
        ({"email": " Ana@Example.com"}, None),
        ({"loyalty_id": 5512}, None),
        ({"customer_id": "C-1"}, "C-1"),
    ],
)
def test_an_erasure_may_name_its_person_by_any_one_identifier(
    named: dict[str, object], customer: str | None
) -> None:
    value = orjson.dumps({"command": "erase_customer", "request_id": "r", **named,
                          "requested_at": "2026-11-22T11:00:00Z"})  # fmt: skip
    command = decode_control(value, NOW, max_bytes=LIMIT)
    assert isinstance(command, ControlCommand)
    assert command.customer_id == customer
    assert len(command.identifiers()) == 1
    assert command.identifier in {("email", "ana@example.com"), ("loyalty_id", "5512"),
                                  ("customer_id", "C-1")}  # fmt: skip


@pytest.mark.parametrize(
    "named", [{}, {"customer_id": "C-1", "email": "a@example.com"}, {"customer_id": "  "}]
)
def test_an_erasure_names_exactly_one_identifier(named: dict[str, str]) -> None:
    value = orjson.dumps({"command": "erase_customer", "request_id": "r", **named,
                          "requested_at": "2026-11-22T11:00:00Z"})  # fmt: skip
    assert decode_control(value, NOW, max_bytes=LIMIT) == Rejection(
        ErrorKind.validation,
        "value: exactly one of customer_id, email, loyalty_id, anonymous_id is required",
        ("value",),
    )


# -- the fast check: what ingest runs, equal to the model wherever it decides ----------------

_TEXTS = st.sampled_from(
    ["", " ", "\x1c", "\u00a0", "C-1", " C-1 ", "ck-İ", "a" * 256, "a" * 257, "A@B.Example",
     " ana@example.com ", "STRASSE@x.de", "Straße@X.de", "e\u0301@x.de", "ﬀ@x.de", "@"]
)  # fmt: skip
_EDGE_TIMES = (
    ["2026-11-22T12:00:00Z", "2026-11-22t12:00:00.5z", "2026-11-22 12:00:00+14:00",
     "2026-11-22T12:00:00.1234567-11:00", "0001-01-01T00:00:00+14:00", "0001-01-02T00:00:00Z",
     "9999-12-31T23:59:59-01:00", "9999-12-31T23:59:59Z", "2026-11-22T12:00Z",
     "2026-11-22T12:00:00+0100", "2026-11-22T12:00:00", "2026-02-30T12:00:00Z",
     "\uff12\uff10\uff12\uff16-11-22T12:00:00Z", "2026-11-22T25:00:00Z", 1795348800]
)  # fmt: skip
_TIMES = st.sampled_from(_EDGE_TIMES)


@st.composite
def fast_cases(draw: st.DrawFn) -> dict[str, Any]:
    """Events where the fast check and the model's Python validators could part ways:
    blanks, cases and Unicode in identifiers, times at the edges, zones, nulls, extras."""
    data = draw(touchpoint_like())
    data["identity"] = draw(
        st.dictionaries(
            st.sampled_from(["customer_id", "email", "loyalty_id", "anonymous_id", "phone"]),
            _TEXTS | st.none() | st.integers(0, 99),
            max_size=4,
        )
    )
    data["occurred_at"] = draw(_TIMES | timestamps)
    if draw(st.booleans()):
        data["context"] = draw(
            st.none()
            | st.fixed_dictionaries(
                {},
                optional={"timezone": st.sampled_from([None, "UTC", "Europe/Berlin", "Mars/Base"]),
                          "locale": _TEXTS, "campaign_id": st.none(), "device": json_values},
            )
        )  # fmt: skip
    if draw(st.booleans()):
        del data["properties"]
    elif draw(st.booleans()):
        data["properties"] = None
    if data.get("channel") is None:
        data["channel"] = draw(st.sampled_from(["web", "email", "store"]))
    return data


def _model_wire(data: dict[str, Any]) -> dict[str, Any] | None:
    try:
        return Touchpoint.model_validate(data).wire()
    except ValidationError:
        return None


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=fast_cases() | touchpoint_like())
def test_the_fast_check_gives_what_the_model_gives(data: dict[str, Any]) -> None:
    from processor.events import fast_wire

    if data.get("channel") is None:
        data["channel"] = "web"  # as decoding fills it in
    before = orjson.dumps(data)
    fast = fast_wire(data)
    assert orjson.dumps(data) == before  # the input is not changed
    if fast is not None:
        expected = _model_wire(data)
        assert expected is not None, data  # nothing the model refuses passes
        assert fast == expected
        assert orjson.dumps(fast) == orjson.dumps(expected)  # order and types too
        assert type(fast["type"]) is EventType
        assert type(fast["channel"]) is Channel
        assert fast["occurred_at"].tzinfo == expected["occurred_at"].tzinfo


@pytest.mark.parametrize("at", _EDGE_TIMES)
@pytest.mark.parametrize("text", ["", " ", "\x1c", "C-1", "A@B.Example", "Straße@X.de", "a" * 257])
def test_the_fast_check_reads_times_and_identifiers_as_the_model_does(
    at: object, text: str
) -> None:
    from processor.events import fast_wire

    for kind in ("customer_id", "email", "loyalty_id"):
        data = event(
            type="loyalty_signup",
            occurred_at=at,
            channel="store",
            identity={kind: text, "anonymous_id": "ck-1"},
            properties={"loyalty_id": "L-1"},
        )
        fast = fast_wire(data)
        assert fast is None or fast == _model_wire(data), data


def test_the_fast_check_takes_the_common_events() -> None:
    """Without this, a fast check that took nothing would pass the test above."""
    from processor.events import fast_wire

    for event_type, props in MINIMAL.items():
        data = event(type=event_type.value, properties=dict(props))
        data["channel"] = next(iter(CHANNELS_OF[event_type])).value
        assert fast_wire(data) == _model_wire(data), event_type
    stated = event(
        occurred_at="2026-11-22T14:00:00.250+02:00",
        channel="web",
        identity={"customer_id": "C-1", "email": " A@B.example ", "anonymous_id": "ck-1",
                  "loyalty_id": "", "phone": "+49"},
        context={"timezone": "Europe/Berlin", "locale": "de-DE", "device": {"os": "x"}},
        properties={"product_id": "P-9", "price": 12, "note": [1, {"a": None}]},
    )  # fmt: skip
    fast = fast_wire(stated)
    assert fast is not None
    assert fast == _model_wire(stated)
    assert fast["identity"] == {"customer_id": "C-1", "email": "a@b.example",
                                "loyalty_id": None, "anonymous_id": "ck-1"}  # fmt: skip
    assert list(fast["context"]) == ["timezone", "locale", "store_id", "campaign_id", "device"]
    unicode = event(identity={"email": "Straße@X.de"}, channel="web")
    assert fast_wire(unicode) == _model_wire(unicode)
    assert fast_wire(unicode)["identity"]["email"] == "strasse@x.de"  # type: ignore[index]


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=json_values | touchpoint_like() | fast_cases(), channel=st.sampled_from(list(Channel)))
def test_ingest_check_agrees_with_decoding(data: object, channel: Channel) -> None:
    """`check_touchpoint` (ingest) gives `decode_touchpoint`'s verdict: the same rejection,
    or the decoded touchpoint's wire form."""
    from processor.decode import check_touchpoint

    value = orjson.dumps(data)
    decoded = decode_touchpoint(value, channel, NOW, max_bytes=LIMIT)
    checked = check_touchpoint(value, channel, NOW, max_bytes=LIMIT)
    if isinstance(decoded, Rejection):
        assert checked == decoded
    else:
        assert checked == decoded.wire()
        assert orjson.dumps(checked) == orjson.dumps(decoded.wire())
