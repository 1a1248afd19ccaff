"""The inbound and outbound wire models: identity, context, properties and RFC 3339 rendering."""

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from processor.events import (
    CHANNELS_OF,
    PROPERTIES_OF,
    Channel,
    ControlCommand,
    EventType,
    Identity,
    Touchpoint,
)
from processor.messages import (
    Action,
    ActionChannel,
    ActionKind,
    DeadLetter,
    Transition,
    to_json,
)

WEB = frozenset({Channel.web})
EMAIL = frozenset({Channel.email})
STORE = frozenset({Channel.store})


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


def errors(data: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as caught:
        Touchpoint.model_validate(data)
    return [
        (".".join(str(p) for p in e["loc"]), e["msg"])
        for e in caught.value.errors(include_url=False)
    ]


def test_every_event_type_has_channels_and_a_properties_model() -> None:
    assert set(CHANNELS_OF) == set(EventType)
    assert set(PROPERTIES_OF) == set(EventType)
    assert len(EventType) == 24


@pytest.mark.parametrize(
    ("event_type", "channels"),
    [
        ("page_view", WEB),
        ("order_placed", WEB),
        ("review_submitted", WEB),
        ("survey_response", frozenset({Channel.web, Channel.email})),
        ("consent_updated", frozenset({Channel.web, Channel.email})),
        ("email_delivered", EMAIL),
        ("email_bounced", EMAIL),
        ("email_complained", EMAIL),
        ("store_visit", STORE),
        ("pos_purchase", STORE),
        ("loyalty_signup", STORE),
    ],
)
def test_channels_of(event_type: str, channels: frozenset[Channel]) -> None:
    assert CHANNELS_OF[EventType(event_type)] == channels


def test_str_enums_compare_equal_to_their_wire_values() -> None:
    assert EventType.cart_add == "cart_add"
    assert f"{Channel.store}" == "store"


# --- identity -----------------------------------------------------------------------------


def test_email_is_trimmed_and_case_folded() -> None:
    identity = Identity.model_validate({"email": "  Ana.Maria@Example.COM \t"})
    assert identity.email == "ana.maria@example.com"


@pytest.mark.parametrize("blank", ["", "   "])
def test_blank_identifiers_count_as_absent(blank: str) -> None:
    identity = Identity.model_validate(
        {"customer_id": blank, "email": blank, "loyalty_id": blank, "anonymous_id": "ck-77f"}
    )
    assert identity.identifiers() == [("anonymous_id", "ck-77f")]


def test_identifiers_come_in_fixed_order() -> None:
    identity = Identity.model_validate(
        {"anonymous_id": "ck-77f", "loyalty_id": "L-555", "email": "ana@x.io", "customer_id": "C"}
    )
    assert identity.identifiers() == [
        ("customer_id", "C"),
        ("email", "ana@x.io"),
        ("loyalty_id", "L-555"),
        ("anonymous_id", "ck-77f"),
    ]


@pytest.mark.parametrize(
    "identity",
    [{}, {"email": "  "}, {"customer_id": None}, {"unknown_id": "x"}],
)
def test_identity_needs_an_identifier(identity: dict[str, Any]) -> None:
    assert errors(event(identity=identity)) == [("identity", "at least one identifier is required")]


def test_identifier_of_257_chars_is_invalid() -> None:
    assert errors(event(identity={"customer_id": "c" * 257})) == [
        ("identity.customer_id", "String should have at most 256 characters")
    ]


def test_loyalty_signup_needs_customer_id_or_email() -> None:
    data = event(type="loyalty_signup", properties={"loyalty_id": "L-555"})
    assert errors({**data, "identity": {"loyalty_id": "L-555", "anonymous_id": "ck"}}) == [
        ("identity", "loyalty_signup needs customer_id or email")
    ]
    with_email = Touchpoint.model_validate({**data, "identity": {"email": "a@b.c"}})
    assert with_email.properties == {"loyalty_id": "L-555"}


# --- context ------------------------------------------------------------------------------


def test_context_keeps_unknown_fields() -> None:
    touchpoint = Touchpoint.model_validate(
        event(context={"timezone": "Europe/Berlin", "locale": "de-DE", "device": "ios"})
    )
    assert touchpoint.context.timezone == "Europe/Berlin"
    assert touchpoint.context.model_dump(exclude_none=True) == {
        "timezone": "Europe/Berlin",
        "locale": "de-DE",
        "device": "ios",
    }


@pytest.mark.parametrize("zone", ["Mars/Olympus", "America", "../etc/passwd", "", "a\x00b"])
def test_unknown_time_zone_is_invalid(zone: str) -> None:
    assert errors(event(context={"timezone": zone})) == [
        ("context.timezone", f"unknown IANA time zone {zone!r}")
    ]


def test_null_context_and_properties_mean_empty() -> None:
    touchpoint = Touchpoint.model_validate(event(type="login", context=None, properties=None))
    assert touchpoint.context.model_dump() == {
        "timezone": None,
        "locale": None,
        "store_id": None,
        "campaign_id": None,
    }
    assert touchpoint.properties == {}


# --- properties ---------------------------------------------------------------------------


def test_properties_keep_extras_and_only_what_was_sent() -> None:
    touchpoint = Touchpoint.model_validate(
        event(properties={"product_id": "P-9", "quantity": 2, "color": "red", "tags": ["a"]})
    )
    assert touchpoint.properties == {
        "product_id": "P-9",
        "quantity": 2,
        "color": "red",
        "tags": ["a"],
    }


def test_unknown_top_level_fields_are_ignored() -> None:
    touchpoint = Touchpoint.model_validate(event(tracker="gtm", version=3))
    assert "tracker" not in touchpoint.model_dump()
    assert touchpoint.event_id == "e-1"


@pytest.mark.parametrize(
    ("event_type", "properties", "expected"),
    [
        (
            "cart_add",
            {"product_id": 9},
            [("properties.product_id", "Input should be a valid string")],
        ),
        (
            "cart_add",
            {"product_id": "P", "quantity": 0},
            [("properties.quantity", "Input should be greater than or equal to 1")],
        ),
        (
            "cart_add",
            {"product_id": "P", "quantity": "two"},
            [
                (
                    "properties.quantity",
                    "Input should be a valid integer, unable to parse string as an integer",
                )
            ],
        ),
        (
            "cart_add",
            {"product_id": "P", "price": -0.01},
            [("properties.price", "Input should be greater than or equal to 0")],
        ),
        (
            "cart_add",
            {"product_id": "P", "currency": "EURO"},
            [("properties.currency", "String should have at most 3 characters")],
        ),
        (
            "order_placed",
            {"order_id": "O-1", "value": "nan"},
            [("properties.value", "Input should be a finite number")],
        ),
        (
            "review_submitted",
            {"rating": 6},
            [("properties.rating", "Input should be less than or equal to 5")],
        ),
        (
            "survey_response",
            {"nps": -1},
            [("properties.nps", "Input should be greater than or equal to 0")],
        ),
        (
            "email_bounced",
            {"bounce_type": "medium"},
            [("properties.bounce_type", "Input should be 'hard' or 'soft'")],
        ),
        (
            "consent_updated",
            {"consent": {"email": "maybe"}},
            [
                (
                    "properties.consent.email",
                    "Input should be a valid boolean, unable to interpret input",
                )
            ],
        ),
        (
            "signup",
            {"consent": True},
            [("properties.consent", "Input should be a valid dictionary")],
        ),
    ],
)
def test_property_types(
    event_type: str, properties: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    assert errors(event(type=event_type, properties=properties)) == expected


def test_consent_is_kept_as_sent() -> None:
    touchpoint = Touchpoint.model_validate(
        event(type="consent_updated", properties={"consent": {"email": False, "whatsapp": True}})
    )
    assert touchpoint.properties == {"consent": {"email": False, "whatsapp": True}}


# --- timestamps ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("occurred_at", "message"),
    [
        ("2026-11-22T12:00:00", "Input should be an RFC 3339 date-time with an offset or Z"),
        (1795348800, "Input should be an RFC 3339 date-time with an offset or Z"),
        ("yesterday", "Input should be an RFC 3339 date-time with an offset or Z"),
    ],
)
def test_occurred_at_must_be_an_aware_rfc3339_string(occurred_at: object, message: str) -> None:
    assert errors(event(occurred_at=occurred_at)) == [("occurred_at", message)]


def test_occurred_at_keeps_its_offset() -> None:
    touchpoint = Touchpoint.model_validate(event(occurred_at="2026-11-22T13:00:00+01:00"))
    assert touchpoint.occurred_at == datetime(2026, 11, 22, 12, tzinfo=UTC)
    assert touchpoint.occurred_at.utcoffset() == timedelta(hours=1)


def test_control_command() -> None:
    command = ControlCommand.model_validate(
        {
            "command": "erase_customer",
            "customer_id": "C-1001",
            "requested_at": "2026-11-22T12:00:00Z",
            "request_id": "r-1",
            "operator": "ignored",
        }
    )
    assert command.customer_id == "C-1001"
    assert command.requested_at == datetime(2026, 11, 22, 12, tzinfo=UTC)


# --- outbound -----------------------------------------------------------------------------

BERLIN_WINTER = timezone(timedelta(hours=1))


def test_times_are_rendered_in_utc_with_z() -> None:
    transition = Transition(
        customer_id="C-1001",
        journey="lifecycle",
        from_stage=None,
        to_stage="awareness",
        at=datetime(2026, 11, 22, 13, 0, tzinfo=BERLIN_WINTER),
        trigger_event_id="e-1",
        trigger_type="page_view",
    )
    assert to_json(transition) == (
        b'{"customer_id":"C-1001","journey":"lifecycle","from_stage":null,'
        b'"to_stage":"awareness","at":"2026-11-22T12:00:00Z","trigger_event_id":"e-1",'
        b'"trigger_type":"page_view","channels_before_conversion":[],'
        b'"copies_gone_within_days":null}'
    )


def test_action_json_matches_orjson_of_the_json_dump() -> None:
    action = Action(
        action_id="a-1",
        customer_id="C-1001",
        action=ActionKind.send_email,
        channel=ActionChannel.email,
        template="cart_reminder",
        journey="lifecycle",
        stage="consideration",
        rule="abandoned_cart",
        trigger_event_id="e-1",
        created_at=datetime(2026, 11, 22, 13, 0, 2, tzinfo=UTC),
        send_after=datetime(2026, 11, 22, 13, 0, 2, 500000, tzinfo=UTC),
        params={"product_ids": ["P-9"], "cart_value": 12.5, "currency": "EUR"},
    )
    assert to_json(action) == orjson.dumps(action.model_dump(mode="json"))
    assert orjson.loads(to_json(action))["send_after"] == "2026-11-22T13:00:02.500000Z"
    assert orjson.loads(to_json(action))["action"] == "send_email"


def test_contract_dead_letter_example_parses() -> None:
    letter = DeadLetter.model_validate(
        {
            "source": {
                "topic": "touchpoints.web",
                "partition": 3,
                "offset": 1042,
                "key": "ck-77f",
                "timestamp": "2026-11-22T12:00:00Z",
            },
            "raw": "{}",
            "raw_encoding": "utf-8",
            "error": {
                "kind": "validation",
                "message": "identity: at least one identifier is required",
                "fields": ["identity"],
            },
            "dead_lettered_at": "2026-11-22T12:00:01Z",
        }
    )
    assert letter.raw_size is None
    assert letter.raw_truncated is False
    assert letter.source.key_encoding == "utf-8"


def _checked_payloads() -> list[dict[str, Any]]:
    """What ingest puts in the envelope: every valid simulated event, every contract example,
    and events with extras, a stated channel and an offset, each dumped and through JSON."""
    from datetime import UTC as utc

    from processor.simulate.generator import SimConfig, generate

    channel_of = {"touchpoints.web": "web", "touchpoints.email": "email",
                  "touchpoints.store": "store"}  # fmt: skip
    raw: list[tuple[bytes, str]] = []
    config = SimConfig(start=datetime(2026, 1, 1, tzinfo=utc), customers=300, seed=3,
                       events=6000)  # fmt: skip
    for m in generate(config):
        if m.topic in channel_of:
            raw.append((m.value, channel_of[m.topic]))
    with open("topics/examples/events.jsonl", "rb") as examples:
        for line in examples:
            doc = orjson.loads(line)
            channel = doc.get("channel")
            if channel:
                raw.append((line, channel))
    payloads = []
    for value, channel in raw:
        try:
            valid = Touchpoint.model_validate(orjson.loads(value))
        except (ValidationError, orjson.JSONDecodeError):
            continue
        if valid.channel not in (None, Channel(channel)):
            continue
        payloads.append(orjson.loads(orjson.dumps(valid.model_dump(mode="json"))))
    extras = event(
        type="consent_updated",
        channel="web",
        occurred_at="2026-11-22T14:00:00.250+02:00",
        identity={"email": " A@B.example ", "anonymous_id": "ck-1"},
        context={"timezone": "Europe/Berlin", "store_id": None, "device": {"os": "x"}},
        properties={"consent": {"email": True, "fax": False}, "source": "banner", "n": 2.5},
    )
    payloads.append(Touchpoint.model_validate(extras).model_dump(mode="json"))
    return payloads


def test_an_event_checked_at_ingest_is_read_as_its_validated_self() -> None:
    from processor.journey.outcome import EventInput

    payloads = _checked_payloads()
    assert {p["type"] for p in payloads} >= {"page_view", "order_placed", "email_opened",
                                             "pos_purchase", "consent_updated"}  # fmt: skip
    for dumped in payloads:
        validated = Touchpoint.model_validate(dumped)
        assert validated.model_dump(mode="json") == dumped
        # What ingest sends: the same JSON, but for how a time is written.
        payload = orjson.loads(orjson.dumps(validated.wire()))
        assert payload.keys() == dumped.keys()
        assert {k: v for k, v in payload.items() if k != "occurred_at"} == {
            k: v for k, v in dumped.items() if k != "occurred_at"
        }
        assert Touchpoint.model_validate(payload) == validated
        channel = validated.channel or Channel.web
        checked = EventInput.checked(payload, channel, "C-9")
        assert checked == EventInput.of(validated, channel, "C-9"), payload
        assert type(checked.type) is EventType
        assert type(checked.occurred_at) is datetime
        assert checked.identifiers == tuple(
            f"{kind}:{value}" for kind, value in validated.identity.identifiers()
        )


_PROPERTY_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 12), st.floats(allow_nan=False, width=32),
    st.sampled_from(["", "x", "EUR", "hard", "P-1", "a" * 300]),
    st.fixed_dictionaries({}, optional={"email": st.booleans(), "fax": st.booleans(),
                                        "sms": st.sampled_from([None, "yes"])}),
)  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(data=st.data())
@pytest.mark.parametrize("event_type", list(EventType))
def test_properties_validate_as_their_model_dumps_them(event_type: EventType, data: Any) -> None:
    """The properties are validated straight into a dict; it is what the published model
    (PROPERTIES_OF, the JSON Schemas') would validate and dump, errors included."""
    from processor.events import _VALIDATE_PROPERTIES

    model = PROPERTIES_OF[event_type]
    keys = [*model.model_fields, "extra_key"]
    props = data.draw(st.dictionaries(st.sampled_from(keys), _PROPERTY_VALUES, max_size=4))

    def outcome(validate: Any) -> Any:
        try:
            return validate(props)
        except ValidationError as exc:
            return [(e["loc"], e["msg"].removesuffix(" or instance of Consent"))
                    for e in exc.errors()]  # fmt: skip

    expected = outcome(lambda p: model.model_validate(p).model_dump(exclude_unset=True))
    assert outcome(_VALIDATE_PROPERTIES[event_type]) == expected
