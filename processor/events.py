"""Inbound wire models: touchpoint events and control commands, as docs/contract.md defines them."""

import re
import unicodedata
from datetime import UTC, datetime
from enum import StrEnum
from functools import cache
from typing import Annotated, Any, Literal, NotRequired, Required, Union
from zoneinfo import available_timezones

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetPydanticSchema,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError, core_schema
from typing_extensions import TypedDict


class Channel(StrEnum):
    """Where a touchpoint came from; implied by the topic it arrived on."""

    web = "web"
    email = "email"
    store = "store"


class EventType(StrEnum):
    """Every touchpoint type the contract defines."""

    page_view = "page_view"
    product_view = "product_view"
    search = "search"
    cart_add = "cart_add"
    cart_remove = "cart_remove"
    checkout_start = "checkout_start"
    order_placed = "order_placed"
    signup = "signup"
    login = "login"
    newsletter_subscribe = "newsletter_subscribe"
    review_submitted = "review_submitted"
    survey_response = "survey_response"
    consent_updated = "consent_updated"
    email_delivered = "email_delivered"
    email_opened = "email_opened"
    email_clicked = "email_clicked"
    email_bounced = "email_bounced"
    email_unsubscribed = "email_unsubscribed"
    email_complained = "email_complained"
    store_visit = "store_visit"
    consultation = "consultation"
    pos_purchase = "pos_purchase"
    product_return = "product_return"
    loyalty_signup = "loyalty_signup"


#: The longest identifier, event id aside (the contract's limit; longer is `validation`).
MAX_IDENTIFIER_CHARS = 256
Identifier = Annotated[str, Field(min_length=1, max_length=MAX_IDENTIFIER_CHARS)]
#: The longest value of a named property the journey keeps (product, order, campaign and store
#: ids, categories, topics): the state of a person stays far below Kafka's message limit.
MAX_SHORT_TEXT_CHARS = 256
#: The longest free text (url, referrer, search query, survey comment), never kept in state.
MAX_LONG_TEXT_CHARS = 4096
Text = Annotated[str, Field(min_length=1, max_length=MAX_SHORT_TEXT_CHARS)]
ShortText = Annotated[str, Field(max_length=MAX_SHORT_TEXT_CHARS)]
LongText = Annotated[str, Field(max_length=MAX_LONG_TEXT_CHARS)]
# NaN would slip past ge=0 (every comparison with it is false), and infinity is no amount.
Amount = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Quantity = Annotated[int, Field(ge=1)]
Currency = Annotated[str, Field(min_length=3, max_length=3)]


def integer_as_text(value: object) -> object:
    """An identifier sent as a JSON integer (`"loyalty_id": 5512`) is its decimal string."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def normalise_email(value: str) -> str:
    """An email as it is matched: NFC-normalised, trimmed and case-folded (case-folding can
    leave a string that is not NFC, hence normalised on both sides). ASCII needs neither, and
    its case-folding is lower()."""
    if value.isascii():
        return value.strip().lower()
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", value).strip().casefold())


def _blank_is_absent(value: object) -> object:
    # Trackers send "" or "  " for "not known yet"; that must not reject an event that carries
    # another identifier. Non-blank ids are opaque and kept verbatim.
    value = integer_as_text(value)
    if isinstance(value, str) and not value.strip():
        return None
    return value


def _email_key(value: object) -> object:
    # The contract matches emails after Unicode NFC normalisation, trimming and case-folding;
    # doing it once here means every later comparison and every state key is already
    # canonical. No provider rules: dots and +tags stay significant.
    value = integer_as_text(value)
    if isinstance(value, str):
        return normalise_email(value) or None
    return value


OptionalIdentifier = Annotated[Identifier | None, BeforeValidator(_blank_is_absent)]
OptionalEmail = Annotated[Identifier | None, BeforeValidator(_email_key)]
_EMAIL_MATCHING = "Matched after Unicode NFC normalisation, trimming and case-folding."
#: The kinds of identifier, most stable first.
IDENTIFIER_KINDS = ("customer_id", "email", "loyalty_id", "anonymous_id")
#: JSON Schema: an object that states one identifier (of any kind), for anyOf / oneOf.
_EACH_IDENTIFIER: list[Any] = [{"required": [kind]} for kind in IDENTIFIER_KINDS]


def stated_identifiers(model: BaseModel) -> list[tuple[str, str]]:
    """The (kind, value) identifiers a model states, most stable first: customer_id, email,
    loyalty_id, anonymous_id."""
    return [
        (kind, value) for kind in IDENTIFIER_KINDS if (value := getattr(model, kind)) is not None
    ]


class Identity(BaseModel):
    """The identifiers one event carries; two or more in one event link them to one person."""

    model_config = ConfigDict(
        frozen=True,
        extra="ignore",
        json_schema_extra={"anyOf": _EACH_IDENTIFIER},
    )

    customer_id: OptionalIdentifier = None
    email: OptionalEmail = Field(default=None, description=_EMAIL_MATCHING)
    loyalty_id: OptionalIdentifier = None
    anonymous_id: OptionalIdentifier = None

    @model_validator(mode="after")
    def _at_least_one(self) -> "Identity":
        if (
            self.customer_id is None
            and self.email is None
            and self.loyalty_id is None
            and self.anonymous_id is None
        ):
            # A custom error, so the dead letter reads exactly as the contract shows it.
            raise PydanticCustomError("identity_required", "at least one identifier is required")
        return self

    def identifiers(self) -> list[tuple[str, str]]:
        """(kind, value) pairs, most stable first: customer_id, email, loyalty_id, anonymous_id."""
        return stated_identifiers(self)


@cache
def _zones() -> frozenset[str]:
    # Looked up once: ZoneInfo(name) on an untrusted name probes the filesystem per event
    # (and raises OSError for names like "America"), a set membership test does neither.
    return frozenset(available_timezones())


class Context(BaseModel):
    """Where and how the event happened; unknown fields are kept."""

    model_config = ConfigDict(frozen=True, extra="allow")

    timezone: str | None = Field(default=None, description="An IANA zone, e.g. Europe/Berlin.")
    locale: ShortText | None = None
    store_id: ShortText | None = None
    campaign_id: ShortText | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None and value not in _zones():
            raise PydanticCustomError(
                "timezone", "unknown IANA time zone {zone}", {"zone": repr(value[:64])}
            )
        return value


class Consent(BaseModel):
    """Marketing consent per channel; an absent channel is left unchanged."""

    model_config = ConfigDict(frozen=True, extra="allow")

    email: bool | None = None
    sms: bool | None = None
    push: bool | None = None


_WEB = frozenset({Channel.web})
_EMAIL = frozenset({Channel.email})
_STORE = frozenset({Channel.store})
_WEB_EMAIL = frozenset({Channel.web, Channel.email})

# Field specs as create_model takes them: (type, default); `...` marks a required (*) property.
_ID = (Text, ...)
_STR = (ShortText | None, None)
_LONG = (LongText | None, None)
_AMOUNT = (Amount | None, None)
_CURRENCY = (Currency | None, None)
# The contract leaves line items free-form; they are passed through, not interpreted.
_ITEMS = (list[Any] | None, None)

# The contract's table of event types, kept as data so that it reads like the contract: the
# topics that may carry each type and its properties. Unknown properties are kept.
_TABLE: dict[EventType, tuple[frozenset[Channel], dict[str, Any]]] = {
    EventType.page_view: (
        _WEB,
        {"url": _LONG, "referrer": _LONG, "utm_source": _STR, "utm_campaign": _STR},
    ),
    EventType.product_view: (_WEB, {"product_id": _ID, "category": _STR, "price": _AMOUNT}),
    EventType.search: (_WEB, {"query": _LONG}),
    EventType.cart_add: (
        _WEB,
        {
            "product_id": _ID,
            "quantity": (Quantity | None, None),
            "price": _AMOUNT,
            "currency": _CURRENCY,
        },
    ),
    EventType.cart_remove: (_WEB, {"product_id": _ID}),
    EventType.checkout_start: (_WEB, {"cart_value": _AMOUNT, "currency": _CURRENCY}),
    EventType.order_placed: (
        _WEB,
        {"order_id": _ID, "value": (Amount, ...), "currency": _CURRENCY, "items": _ITEMS},
    ),
    EventType.signup: (_WEB, {"consent": (Consent | None, None)}),
    EventType.login: (_WEB, {}),
    EventType.newsletter_subscribe: (_WEB, {}),
    EventType.review_submitted: (
        _WEB,
        {"product_id": (Text | None, None), "rating": (Annotated[int, Field(ge=1, le=5)], ...)},
    ),
    EventType.survey_response: (
        _WEB_EMAIL,
        {"nps": (Annotated[int, Field(ge=0, le=10)], ...), "comment": _LONG},
    ),
    EventType.consent_updated: (_WEB_EMAIL, {"consent": (Consent, ...)}),
    EventType.email_delivered: (_EMAIL, {"campaign_id": _ID, "message_id": _STR}),
    EventType.email_opened: (_EMAIL, {"campaign_id": _ID, "message_id": _STR}),
    EventType.email_clicked: (_EMAIL, {"campaign_id": _ID, "message_id": _STR, "url": _LONG}),
    EventType.email_bounced: (
        _EMAIL,
        {"campaign_id": _STR, "bounce_type": (Literal["hard", "soft"], ...)},
    ),
    EventType.email_unsubscribed: (_EMAIL, {"campaign_id": _STR}),
    EventType.email_complained: (_EMAIL, {"campaign_id": _STR}),
    EventType.store_visit: (_STORE, {"store_id": _ID}),
    EventType.consultation: (_STORE, {"store_id": _ID, "topic": _STR}),
    EventType.pos_purchase: (
        _STORE,
        {
            "store_id": _ID,
            "order_id": _ID,
            "value": (Amount, ...),
            "currency": _CURRENCY,
            "items": _ITEMS,
        },
    ),
    EventType.product_return: (_STORE, {"order_id": _ID, "value": _AMOUNT}),
    # The identity rule that goes with it (customer_id or email) is on Touchpoint.
    EventType.loyalty_signup: (_STORE, {"loyalty_id": (Identifier, ...)}),
}


def _properties_model(event_type: EventType, fields: dict[str, Any]) -> type[BaseModel]:
    name = "".join(word.title() for word in event_type.value.split("_")) + "Properties"
    return create_model(
        name,
        __config__=ConfigDict(frozen=True, extra="allow"),
        __module__=__name__,
        **fields,
    )


CHANNELS_OF: dict[EventType, frozenset[Channel]] = {t: c for t, (c, _) in _TABLE.items()}
#: Each type's properties as a model: what the JSON Schemas publish.
PROPERTIES_OF: dict[EventType, type[BaseModel]] = {
    t: _properties_model(t, fields) for t, (_, fields) in _TABLE.items()
}


class _ConsentProperty(TypedDict, total=False):
    """`Consent` as `_typed_properties` validates it: the channels given, and any others."""

    __pydantic_config__ = ConfigDict(extra="allow")  # type: ignore[misc]

    email: bool | None
    sms: bool | None
    push: bool | None


def _as_dict_type(annotation: Any) -> Any:
    """A property's type as it is validated into a plain dict (the nested `Consent` model
    as a TypedDict of the same fields)."""
    if annotation is Consent:
        return _ConsentProperty
    if annotation == Consent | None:
        return _ConsentProperty | None
    return annotation


def _properties_dict(event_type: EventType, fields: dict[str, Any]) -> Any:
    """The same table row as `PROPERTIES_OF`'s model, as a TypedDict that validates straight
    into the dict that the model's `model_dump(exclude_unset=True)` would give (given keys
    only, extras kept), without making the model."""
    name = "".join(word.title() for word in event_type.value.split("_")) + "PropertiesDict"
    keys = {
        key: Required[_as_dict_type(kind)] if default is ... else NotRequired[_as_dict_type(kind)]
        for key, (kind, default) in fields.items()
    }
    typed = TypedDict(name, keys)  # type: ignore[misc]
    typed.__pydantic_config__ = ConfigDict(extra="allow")  # type: ignore[attr-defined]
    return typed


#: Each type's properties as a TypedDict (`_properties_dict`).
_PROPERTIES_DICT = {t: _properties_dict(t, fields) for t, (_, fields) in _TABLE.items()}
#: Each type's properties validator (`_typed_properties`).
_VALIDATE_PROPERTIES = {
    t: TypeAdapter(typed).validator.validate_python for t, typed in _PROPERTIES_DICT.items()
}


#: RFC 3339's date-time: full date, `T` (or a space, or `t`), full time with seconds, an offset.
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})")


def _rfc3339_only(value: object) -> object:
    # Lax pydantic would read a bare number as Unix seconds (or milliseconds, by magnitude),
    # and accept ISO 8601 forms RFC 3339 does not (no seconds, `+0100`); the contract says
    # RFC 3339 strings, and guessing is how clocks go wrong.
    if isinstance(value, datetime) or (isinstance(value, str) and _RFC3339.fullmatch(value)):
        return value
    raise PydanticCustomError(
        "datetime_type", "Input should be an RFC 3339 date-time with an offset or Z"
    )


def _representable_in_utc(value: datetime) -> datetime:
    # `0001-01-01T00:00:00+14:00` is a valid date-time but lies before the first instant
    # Python can hold in UTC, where every time is compared and stored.
    try:
        value.astimezone(UTC)
    except OverflowError:
        raise PydanticCustomError(
            "datetime_range", "Input lies outside years 1 to 9999 once moved to UTC"
        ) from None
    return value


Timestamp = Annotated[
    AwareDatetime, BeforeValidator(_rfc3339_only), AfterValidator(_representable_in_utc)
]


#: An event's (or a request's) own id.
EventId = Annotated[str, Field(min_length=1, max_length=128)]


class Touchpoint(BaseModel):
    """One validated inbound event; `properties` holds the type's properties plus any extras."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    event_id: EventId
    type: EventType
    occurred_at: Timestamp
    channel: Channel | None = Field(
        default=None, description="Implied by the topic; when stated it must match it."
    )
    identity: Identity
    context: Context = Field(default_factory=Context)
    # validate_default: an absent `properties` must still meet the type's required ones.
    properties: dict[str, Any] = Field(default_factory=dict, validate_default=True)

    def wire(self) -> dict[str, Any]:
        """The event as ingest carries it to the agents: the values of `model_dump(mode="json")`
        (its enums and time as they are, for orjson to write), taken from the fields instead
        of pydantic's serializer, which costs three times as much per event. A test holds its
        JSON equal to the model's for every event type. (Ingest makes this form without the
        model for most events: `fast_wire`.)"""
        context = self.context
        extra = context.__pydantic_extra__
        return {
            "event_id": self.event_id,
            "type": self.type,
            "occurred_at": self.occurred_at,
            "channel": self.channel,
            "identity": self.identity.__dict__,
            "context": {**context.__dict__, **extra} if extra else context.__dict__,
            "properties": self.properties,
        }

    @field_validator("context", "properties", mode="before")
    @classmethod
    def _null_is_empty(cls, value: object) -> object:
        # Serialisers commonly write null for an empty optional object.
        return {} if value is None else value

    @field_validator("identity")
    @classmethod
    def _loyalty_needs_person(cls, identity: Identity, info: ValidationInfo) -> Identity:
        # A loyalty card on its own would create a profile nobody can reach; the contract
        # wants the card linked to a known person in the same event.
        if (
            info.data.get("type") is EventType.loyalty_signup
            and identity.customer_id is None
            and identity.email is None
        ):
            raise PydanticCustomError(
                "loyalty_identity", "loyalty_signup needs customer_id or email"
            )
        return identity

    @field_validator("properties")
    @classmethod
    def _typed_properties(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        # `type` is declared first, so it is in info.data exactly when it validated; when it
        # did not, that error is the one to report. Errors raised here keep their nested
        # location (properties.product_id), which is what the dead letter names.
        event_type = info.data.get("type")
        if event_type is None:
            return value
        return _VALIDATE_PROPERTIES[event_type](value)  # type: ignore[no-any-return]


# The fast check: the contract's checks that pydantic's core makes on its own, with no Python
# validator called per field, into plain values. Most events are valid and need nothing the
# core cannot check: for them it costs a fraction of the model's validation. What the model's
# Python validators do is done after it, in one pass over the identifiers (`fast_wire`). An
# event the fast check does not take goes to the model, which decides.

#: RFC 3339 as `_RFC3339` takes it (ASCII digits only, so that what this takes, that takes).
_RFC3339_CORE = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?"
    r"(?:[Zz]|[+-][0-9]{2}:[0-9]{2})$"
)


def _core_timestamp(_source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
    # `Timestamp` without its Python validators: the RFC 3339 form, then the aware date-time.
    return core_schema.chain_schema(
        [core_schema.str_schema(pattern=_RFC3339_CORE), handler(AwareDatetime)]
    )


class _CoreIdentity(TypedDict, total=False):
    """`Identity`'s fields as the texts given: blanks and emails are settled after the check."""

    __pydantic_config__ = ConfigDict(extra="ignore")  # type: ignore[misc]

    customer_id: str | None
    email: str | None
    loyalty_id: str | None
    anonymous_id: str | None


_CONTEXT_FIELDS = tuple(Context.model_fields)
#: `Context` as a TypedDict: its fields with their constraints, and any extras.
_CoreContext = TypedDict(  # type: ignore[misc]
    "_CoreContext",
    {n: NotRequired[f.rebuild_annotation()] for n, f in Context.model_fields.items()},
)
_CoreContext.__pydantic_config__ = ConfigDict(extra="allow")  # type: ignore[attr-defined]


def _core_event(event_type: EventType) -> Any:
    """One type's touchpoint as a TypedDict: `Touchpoint`'s fields, this type's properties; a
    `channel` is required (decoding fills it in) and an object may not be null (the model
    takes those)."""
    name = "".join(word.title() for word in event_type.value.split("_")) + "Event"
    typed = TypedDict(  # type: ignore[misc]  # noqa: UP013 (a name made here)
        name,
        {
            "event_id": Required[EventId],
            "type": Required[Literal[event_type]],
            "occurred_at": Required[Annotated[datetime, GetPydanticSchema(_core_timestamp)]],
            "channel": Required[Channel],
            "identity": Required[_CoreIdentity],
            "context": NotRequired[_CoreContext],
            "properties": NotRequired[_PROPERTIES_DICT[event_type]],
        },
    )
    typed.__pydantic_config__ = ConfigDict(extra="ignore")  # type: ignore[attr-defined]
    return typed


_EACH_TYPE: Any = Union[tuple(_core_event(t) for t in EventType)]  # noqa: UP007
_FAST_CHECK = TypeAdapter[Any](
    Annotated[_EACH_TYPE, Field(discriminator="type")]
).validator.validate_python
_NOTHING: dict[str, Any] = {}


def _identifier(value: str | None) -> str | None:
    # `_blank_is_absent` of a text.
    return value if value is not None and value.strip() else None


def fast_wire(data: dict[str, Any]) -> dict[str, Any] | None:
    """`Touchpoint.model_validate(data).wire()` for an event that the fast check takes (a
    property test holds them equal), else None: the event is invalid, or needs what only the
    model does (an identifier sent as a number, a null object, no `channel`); the model
    decides those. `data` is not changed."""
    try:
        d = _FAST_CHECK(data)
    except ValidationError:
        return None
    event_type = d["type"]
    occurred = d["occurred_at"]
    if not 1 < occurred.year < 9999:
        return None  # `_representable_in_utc` may refuse it; only these years can leave UTC's
    given = d["identity"]
    customer = _identifier(given.get("customer_id"))
    email = given.get("email")
    if email is not None:
        email = normalise_email(email) or None
    loyalty = _identifier(given.get("loyalty_id"))
    anonymous = _identifier(given.get("anonymous_id"))
    if customer is None and email is None and loyalty is None and anonymous is None:
        return None  # `Identity._at_least_one`
    if event_type is _LOYALTY and customer is None and email is None:
        return None  # `Touchpoint._loyalty_needs_person`
    for value in (customer, email, loyalty, anonymous):
        if value is not None and len(value) > MAX_IDENTIFIER_CHARS:
            return None
    stated = d.get("context")
    if stated is None:
        context = dict.fromkeys(_CONTEXT_FIELDS)
    else:
        zone = stated.get("timezone")
        if zone is not None and zone not in _zones():
            return None
        context = {n: stated.get(n) for n in _CONTEXT_FIELDS}
        for name, value in stated.items():
            if name not in context:
                context[name] = value  # an extra: after the fields, as `wire` gives them
    properties = d.get("properties")
    if properties is None:
        try:
            properties = _VALIDATE_PROPERTIES[event_type](_NOTHING)
        except ValidationError:
            return None
    return {
        "event_id": d["event_id"],
        "type": event_type,
        "occurred_at": occurred,
        "channel": d["channel"],
        "identity": {
            "customer_id": customer,
            "email": email,
            "loyalty_id": loyalty,
            "anonymous_id": anonymous,
        },
        "context": context,
        "properties": properties,
    }


_LOYALTY = EventType.loyalty_signup


CommandName = Literal["erase_customer"]


class ControlCommand(BaseModel):
    """An ops or privacy instruction read from `journey.control`; it names the person by
    exactly one identifier (`erase_customer` erases the person that identifier belongs to)."""

    model_config = ConfigDict(
        frozen=True,
        extra="ignore",
        json_schema_extra={"oneOf": _EACH_IDENTIFIER},
    )

    command: CommandName
    customer_id: OptionalIdentifier = None
    email: OptionalEmail = Field(default=None, description=_EMAIL_MATCHING)
    loyalty_id: OptionalIdentifier = None
    anonymous_id: OptionalIdentifier = None
    requested_at: Timestamp
    request_id: EventId

    @model_validator(mode="after")
    def _exactly_one(self) -> "ControlCommand":
        if len(self.identifiers()) != 1:
            raise PydanticCustomError(
                "identifier_count",
                "exactly one of customer_id, email, loyalty_id, anonymous_id is required",
            )
        return self

    def identifiers(self) -> list[tuple[str, str]]:
        """The (kind, value) pairs stated: exactly one in a valid command."""
        return stated_identifiers(self)

    @property
    def identifier(self) -> tuple[str, str]:
        """The one (kind, value) the command names its person by."""
        return self.identifiers()[0]
