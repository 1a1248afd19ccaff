"""Action params: literals, or `{reference}` placeholders resolved when an action is emitted."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

from processor.journey.state import CustomerState

_PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_.]*)\}")
#: `viewed.product_ids` lists at most this many products, so an ad request stays small.
_MAX_VIEWED = 10


@dataclass(slots=True)
class ParamContext:
    """What params may draw on when an action is emitted.

    Never changed once made; not frozen, because a frozen dataclass costs about three times as
    much to build, and every action builds one."""

    state: CustomerState
    #: The trigger event's properties that params refer to (kept in the timer's payload).
    props: Mapping[str, Any]
    key: str | None
    coupon_code: str
    #: Epoch seconds of the rule's trigger.
    since: float


def _cart_product_ids(c: ParamContext) -> Any:
    cart = c.state.cart
    return [] if cart is None else list(cart.items)


def _cart_value(c: ParamContext) -> Any:
    cart = c.state.cart
    return 0.0 if cart is None else round(sum(cart.items.values()), 2)


def _cart_currency(c: ParamContext) -> Any:
    cart = c.state.cart
    return None if cart is None else cart.currency


def _viewed_product_ids(c: ParamContext) -> Any:
    seen: list[str] = []
    for typ, props, at in reversed(c.state.recent):
        pid = props.get("product_id")
        if typ == "product_view" and at >= c.since and pid and pid not in seen:
            seen.append(pid)
    return seen[:_MAX_VIEWED]


#: Each fixed reference's value; any other is `event.<property>`.
_FIXED_REFS: dict[str, Callable[[ParamContext], Any]] = {
    "cart.product_ids": _cart_product_ids,
    "cart.value": _cart_value,
    "cart.currency": _cart_currency,
    "viewed.product_ids": _viewed_product_ids,
    "coupon_code": lambda c: c.coupon_code,
    "key": lambda c: c.key,
}


def _reference(name: str) -> Callable[[ParamContext], Any]:
    """The function that resolves reference `name` (a fixed one, or `event.<property>`)."""
    fixed = _FIXED_REFS.get(name)
    if fixed is not None:
        return fixed
    prop = name.removeprefix("event.")
    return lambda c: c.props.get(prop)


class Params:
    """Compiled params; call with a ParamContext to get the action's params.

    A string that is exactly one placeholder (`"{cart.product_ids}"`) yields the raw value (a list,
    a number); placeholders inside text are interpolated (`"interest:{key}"`). References:
    `cart.product_ids`, `cart.value`, `cart.currency`, `viewed.product_ids` (product ids viewed
    since the rule's trigger, newest first, at most 10), `coupon_code` (deterministic per person
    and trigger), `key` (the rule's key, e.g. the order id), `event.<property>` (of the trigger).
    """

    __slots__ = ("event_props", "parts", "source", "uses_coupon")

    def __init__(self, source: dict[str, Any]) -> None:
        self.source = source
        refs: set[str] = set()
        parts: list[tuple[str, Callable[[ParamContext], Any]]] = []
        for name, value in source.items():
            parts.append((str(name), _compile_value(value, f"params.{name}", refs)))
        #: Trigger-event properties the params refer to (stored with waits and follow-ups).
        self.event_props = tuple(sorted(r.removeprefix("event.") for r in refs if "event." in r))
        self.parts = parts
        #: Do they refer to `coupon_code` (made only for the actions that show it)?
        self.uses_coupon = "coupon_code" in refs

    def __call__(self, context: ParamContext) -> dict[str, Any]:
        return {name: fn(context) for name, fn in self.parts}

    @classmethod
    def validate(cls, value: Any) -> Params:
        """Pydantic hook: a mapping of literals and placeholders."""
        if isinstance(value, Params):
            return value
        if value is None:
            return cls({})
        if not isinstance(value, dict):
            raise ValueError("params: expected a mapping of name: value")
        return cls(value)

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source_type: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            cls.validate,
            serialization=core_schema.plain_serializer_function_ser_schema(lambda p: p.source),
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {
            "type": "object",
            "description": "The action's parameters: literals, or `{reference}`s "
            "(cart.product_ids, cart.value, cart.currency, viewed.product_ids, coupon_code, "
            "key, event.<property>).",
        }


def _compile_value(value: Any, where: str, refs: set[str]) -> Callable[[ParamContext], Any]:
    if not isinstance(value, str):
        return lambda c: value
    names = _PLACEHOLDER.findall(value)
    for n in names:
        if n not in _FIXED_REFS and not (n.startswith("event.") and len(n) > len("event.")):
            known = ", ".join((*_FIXED_REFS, "event.<property>"))
            raise ValueError(f"{where}: unknown reference {{{n}}} (known: {known})")
        refs.add(n)
    if not names:
        return lambda c: value
    if _PLACEHOLDER.fullmatch(value):
        return _reference(names[0])
    # Text around placeholders: the literal pieces and the references, alternating.
    pieces = _PLACEHOLDER.split(value)
    first = pieces[0]
    rest = [(_reference(n), text) for n, text in zip(pieces[1::2], pieces[2::2], strict=True)]

    def interpolated(c: ParamContext) -> str:
        return first + "".join(str(ref(c)) + text for ref, text in rest)

    return interpolated
