"""Outbound wire models: actions, stage transitions and dead letters, per docs/contract.md."""

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, NamedTuple, TypeVar

import orjson
import pydantic_core
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field


def _as_utc(value: datetime) -> datetime:
    # Every outbound time is in UTC (rendered with `Z`), so that consumers can compare and
    # sort them as strings and the same input always serialises to the same bytes.
    return value.astimezone(UTC)


# Fields with defaults are still always written, so the published schema marks them required.
_OUTBOUND = ConfigDict(frozen=True, json_schema_serialization_defaults_required=True)

UtcDatetime = Annotated[AwareDatetime, AfterValidator(_as_utc)]


class ActionKind(StrEnum):
    """What a downstream sender is asked to do."""

    send_email = "send_email"
    send_sms = "send_sms"
    send_push = "send_push"
    issue_coupon = "issue_coupon"
    retarget_ad = "retarget_ad"
    create_support_task = "create_support_task"
    tag_customer = "tag_customer"


class ActionChannel(StrEnum):
    """The outbound channel an action goes through."""

    email = "email"
    sms = "sms"
    push = "push"
    ads = "ads"
    crm = "crm"


class Action(BaseModel):
    """A follow-up for a downstream sender, published to `journey.actions`."""

    model_config = _OUTBOUND

    action_id: str = Field(
        description="Deterministic per (rule, customer, trigger): senders dedupe on it."
    )
    customer_id: str
    action: ActionKind
    channel: ActionChannel
    template: str
    journey: str
    stage: str
    rule: str
    trigger_event_id: str
    created_at: UtcDatetime
    send_after: UtcDatetime = Field(
        description="Later than created_at only when quiet hours or a wait step moved it."
    )
    params: dict[str, Any] = Field(default_factory=dict)


class Transition(BaseModel):
    """A person moving between stages of a journey, published to `journey.transitions`."""

    model_config = _OUTBOUND

    customer_id: str
    journey: str
    from_stage: str | None = Field(
        description="null only when the person enters the journey's first stage."
    )
    to_stage: str
    at: UtcDatetime = Field(
        description="When the move happened: the trigger event's occurred_at, a timer's due "
        "time, or for a merge the occurred_at of the event that linked the two profiles."
    )
    trigger_event_id: str = Field(
        description="The event id, the timer id (trigger_type timer), `merge:<key>` naming "
        "the profile folded in (identity_merge), or the erase request's id (erase_customer)."
    )
    trigger_type: str = Field(
        description="The trigger event's type, `timer`, `identity_merge` or `erase_customer`."
    )
    channels_before_conversion: list[str] = Field(default_factory=list)
    copies_gone_within_days: int | None = Field(
        default=None,
        description="Only on an erasure receipt (to_stage `erased`): every copy of the "
        "person's data that the processor held or wrote to Kafka before the receipt is gone "
        "within this many days of it, by the retention and compaction settings in topics/; "
        "null when a topic's settings bound nothing.",
    )


class ErrorKind(StrEnum):
    """Why an inbound message was dead-lettered."""

    decode = "decode"
    validation = "validation"
    unknown_type = "unknown_type"
    too_large = "too_large"
    future_timestamp = "future_timestamp"
    channel_mismatch = "channel_mismatch"
    #: Added to the contract's kinds: a valid message whose processing failed unexpectedly.
    internal = "internal"


class DeadLetterSource(BaseModel):
    """Where the rejected message sits, so it can be replayed from the source topic."""

    model_config = _OUTBOUND

    topic: str
    partition: int
    offset: int
    key: str | None = Field(description="As received: UTF-8 text, or base64 when not UTF-8.")
    # Additive: without it a consumer could not tell a base64 key from a UTF-8 one.
    key_encoding: Literal["utf-8", "base64"] = "utf-8"
    timestamp: str | None = Field(description="The record's timestamp, RFC 3339 in UTC.")


class DeadLetterError(BaseModel):
    """The reason for the rejection."""

    model_config = _OUTBOUND

    kind: ErrorKind
    message: str
    fields: list[str] = Field(default_factory=list)


class DeadLetter(BaseModel):
    """An inbound message that could not be processed, published to `touchpoints.deadletter`."""

    model_config = _OUTBOUND

    source: DeadLetterSource
    raw: str = Field(description="The original value: UTF-8 text, or base64 when not UTF-8.")
    raw_encoding: Literal["utf-8", "base64"]
    raw_truncated: bool = Field(
        default=False, description="True when only a prefix of a too_large value is kept."
    )
    # Optional so that the contract's own minimal example still parses; this processor
    # always sets it.
    raw_size: int | None = Field(default=None, ge=0, description="Bytes of the original value.")
    error: DeadLetterError
    dead_lettered_at: UtcDatetime


_M = TypeVar("_M", bound=BaseModel)


class _Field(NamedTuple):
    """What `made` needs of a model's field: its name, and for a field with a default, its
    default factory or its (immutable) default value."""

    name: str
    required: bool
    factory: Any
    default: Any


_SHAPES: dict[type[BaseModel], tuple[_Field, ...]] = {}
#: Each shaped model's field names, in order.
_NAMES: dict[type[BaseModel], tuple[str, ...]] = {}
_set = object.__setattr__
_IMMUTABLE = (type(None), bool, int, float, str, bytes, tuple, frozenset)


def _shape(model: type[BaseModel]) -> tuple[_Field, ...]:
    known = _SHAPES.get(model)
    if known is None:
        fields = model.model_fields
        if (
            model.__private_attributes__
            or model.__pydantic_post_init__
            or model.model_config.get("extra") == "allow"
            or any(
                f.alias
                or f.validation_alias
                or f.default_factory_takes_validated_data
                or not (f.is_required() or f.default_factory or isinstance(f.default, _IMMUTABLE))
                for f in fields.values()
            )
        ):
            raise TypeError(
                f"made() builds models without aliases, extras, private attributes, a "
                f"post-init, mutable defaults or factories of validated data; "
                f"{model.__name__} has one"
            )
        known = _SHAPES[model] = tuple(
            _Field(n, f.is_required(), f.default_factory, f.default) for n, f in fields.items()
        )
        _NAMES[model] = tuple(fields)
    return known


def made(model: type[_M], **fields: Any) -> _M:
    """A model built from values valid by construction (known enums and strings, times in
    UTC), without validating them again: validation costs more than the rest of a typical
    journey step's emit. `tests/unit/journey/test_outputs.py` holds every output of the
    scenarios equal to its validated self.

    What pydantic's `model_construct` builds, without its walk over aliases: the given fields
    in the model's order (its JSON follows that order), each missing default filled in, as
    the instance's `__dict__`. A key that is not a field is refused."""
    shape = _shape(model)
    if tuple(fields) == _NAMES[model]:
        values = fields  # every field, in the model's order: the keywords are the values
    else:
        values = {}
        found = 0
        for name, required, factory, default in shape:
            if name in fields:
                values[name] = fields[name]
                found += 1
            elif not required:
                values[name] = factory() if factory is not None else default
        if found != len(fields):
            unknown = ", ".join(sorted(fields.keys() - values.keys()))
            raise TypeError(f"{model.__name__} has no field {unknown}")
    obj = model.__new__(model)
    _set(obj, "__dict__", values)
    _set(obj, "__pydantic_fields_set__", set(fields))
    _set(obj, "__pydantic_extra__", None)
    _set(obj, "__pydantic_private__", None)
    return obj


def to_json(model: BaseModel) -> bytes:
    """The compact UTF-8 JSON of a wire model, as published to Kafka."""
    # The same bytes as orjson.dumps(model.model_dump(mode="json")) (a test holds them equal),
    # without building the intermediate dict: about 40% faster per message.
    return pydantic_core.to_json(model)


def output_json(model: BaseModel) -> bytes:
    """`to_json` of an output the engine made (an action or a transition, built by `made`:
    flat, its times in UTC), written by orjson from its values at a third of the cost. Tests
    hold the bytes equal to `to_json`'s for every output of the scenarios and for any params."""
    try:
        return orjson.dumps(model.__dict__, option=orjson.OPT_UTC_Z)
    except TypeError:  # a value orjson does not write (an integer beyond 64 bits)
        return to_json(model)
