"""Conditions: a small declarative vocabulary compiled once, at load time, into closures."""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema

from processor.journey.state import CustomerState
from processor.journey.yamlfile import parse_duration


@dataclass(slots=True)
class Facts:
    """What a condition may look at: the person, the trigger's properties and time.

    Never changed once made; not frozen, because a frozen dataclass costs about three times as
    much to build, and a step builds one for most events it evaluates conditions on."""

    state: CustomerState
    props: Mapping[str, Any]
    #: Epoch seconds of the trigger (the event's occurred_at, or the timer's due time).
    at: float
    #: Effective marketing consent on a channel, as the consent policy decides it.
    consent: Callable[[str], bool]


Test = Callable[[Facts], bool]
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "lt": operator.lt,
    "lte": operator.le,
    "gt": operator.gt,
    "gte": operator.ge,
    "in": lambda a, b: a in b,
}
_FACTS: dict[str, Callable[[Facts], Any]] = {
    "stage": lambda f: f.state.stage,
    "purchases": lambda f: f.state.purchases,
    "lifetime_value": lambda f: f.state.lifetime_value,
    "unopened_streak": lambda f: f.state.unopened_streak,
}


class Condition:
    """A compiled condition: call it with Facts. Also records what the state must track.

    A condition is a mapping; all of its entries must hold. An entry is either a fact of the
    person (`stage`, `purchases`, `lifetime_value`, `unopened_streak`, `consent`), a counter
    (`count`, `touched`), a combinator (`any`, `all`, `not`), or else a property of the triggering
    event (`nps`, `rating`, `bounce_type`, ...). A value is a literal (equality; a list for
    membership) or a mapping of operators `eq ne lt lte gt gte in`. A missing property or a
    value of the wrong type makes a comparison false, never an error. No `eval`, ever.
    """

    __slots__ = ("always", "source", "test", "tracked", "window_s")

    def __init__(
        self, source: Any, test: Test, tracked: frozenset[tuple[str, str]], window_s: float
    ) -> None:
        self.source = source
        self.test = test
        #: (event type, property) pairs that `count` looks back at.
        self.tracked = tracked
        #: The longest look-back of any `count` inside, in seconds.
        self.window_s = window_s
        #: Does it hold whatever the facts (an empty condition)? Callers may skip the call.
        self.always = not source

    def __call__(self, facts: Facts) -> bool:
        return self.test(facts)

    def __repr__(self) -> str:
        return f"Condition({self.source!r})"

    @classmethod
    def compile(cls, spec: Any) -> Condition:
        """Compile a parsed YAML condition, or raise ValueError naming the bad part."""
        if isinstance(spec, Condition):
            return spec
        tracked: set[tuple[str, str]] = set()
        windows: list[float] = [0.0]
        test = _all(spec, "", tracked, windows)
        return cls(spec, test, frozenset(tracked), max(windows))

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source_type: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            cls.compile, serialization=core_schema.plain_serializer_function_ser_schema(_source)
        )

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {
            "type": "object",
            "description": "A condition: event properties (`nps: {lte: 6}`, `rating: 5`), facts "
            "of the person (`stage`, `purchases`, `lifetime_value`, `unopened_streak`, "
            "`consent: email`), `count`, `touched`, and `any`, `all`, `not` of conditions.",
            "examples": [{"nps": {"lte": 6}}, {"purchases": {"gte": 2}}, {"consent": "email"}],
        }


def _source(c: Condition) -> Any:
    return c.source


def _compare(get: Callable[[Facts], Any], spec: Any, where: str) -> Test:
    if isinstance(spec, Mapping):
        if not spec:
            raise ValueError(f"{where}: needs an operator such as eq or lte")
        checks: list[tuple[Callable[[Any, Any], bool], Any]] = []
        for op, want in spec.items():
            if op not in _OPS:
                raise ValueError(f"{where}: unknown operator {op!r} (use {', '.join(_OPS)})")
            if op == "in" and not isinstance(want, list):
                raise ValueError(f"{where}.in: needs a list")
            checks.append((_OPS[op], want))
    elif isinstance(spec, list):
        checks = [(_OPS["in"], spec)]
    else:
        checks = [(operator.eq, spec)]

    def test(f: Facts) -> bool:
        value = get(f)
        if value is None:
            return False
        try:
            # A loop, not all() of a generator: conditions run on most events.
            for op, want in checks:  # noqa: SIM110
                if not op(value, want):
                    return False
            return True
        except TypeError:  # e.g. "abc" <= 6: a wrong type is a non-match, not a crash
            return False

    return test


def _count(spec: Any, where: str, tracked: set[tuple[str, str]], windows: list[float]) -> Test:
    if not isinstance(spec, Mapping) or "of" not in spec or "within" not in spec:
        raise ValueError(f"{where}: needs `of` (an event type), `within` and an operator")
    of, same = str(spec["of"]), spec.get("same")
    window_s = parse_duration(spec["within"]).total_seconds()
    windows.append(window_s)
    if same is not None:
        tracked.add((of, str(same)))
    rest = {k: v for k, v in spec.items() if k not in ("of", "same", "within")}
    if not rest:
        raise ValueError(f"{where}: needs an operator such as gte: 3")

    def number(f: Facts) -> int:
        since = f.at - window_s
        want = None if same is None else f.props.get(str(same))
        if same is not None and want is None:
            return 0
        n = 0
        for typ, props, at in f.state.recent:
            if typ == of and since <= at <= f.at and (same is None or props.get(same) == want):
                n += 1
        return n

    if same is None:
        tracked.add((of, ""))
    return _compare(number, rest, where)


def _touched(spec: Any, where: str) -> Test:
    if not isinstance(spec, Mapping) or set(spec) != {"channels", "within"}:
        raise ValueError(f"{where}: needs exactly `channels` (a list) and `within`")
    channels = frozenset(str(c) for c in spec["channels"])
    window_s = parse_duration(spec["within"]).total_seconds()

    def test(f: Facts) -> bool:
        return any(c in channels and f.at - window_s <= at <= f.at for c, at in f.state.touches)

    return test


def _one(key: str, spec: Any, where: str, tracked: set[tuple[str, str]], w: list[float]) -> Test:
    if key in ("any", "all"):
        if not isinstance(spec, list) or not spec:
            raise ValueError(f"{where}: needs a non-empty list of conditions")
        parts = [_all(s, f"{where}.{i}", tracked, w) for i, s in enumerate(spec)]
        return _any_of(parts) if key == "any" else _all_of(parts)
    if key == "not":
        inner = _all(spec, where, tracked, w)
        return lambda f: not inner(f)
    if key == "consent":
        channel = str(spec)
        return lambda f: f.consent(channel)
    if key == "count":
        return _count(spec, where, tracked, w)
    if key == "touched":
        return _touched(spec, where)
    if key in _FACTS:
        return _compare(_FACTS[key], spec, where)
    return _compare(lambda f: f.props.get(key), spec, where)


def _all(spec: Any, where: str, tracked: set[tuple[str, str]], w: list[float]) -> Test:
    if spec is None:
        return lambda f: True
    if not isinstance(spec, Mapping):
        raise ValueError(f"{where or 'condition'}: expected a mapping such as {{nps: {{lte: 6}}}}")
    parts = [
        _one(str(k), v, f"{where}.{k}" if where else str(k), tracked, w) for k, v in spec.items()
    ]
    return _all_of(parts)


def _all_of(parts: list[Test]) -> Test:
    if len(parts) == 1:
        return parts[0]

    def test(f: Facts) -> bool:
        return all(part(f) for part in parts)

    return test


def _any_of(parts: list[Test]) -> Test:
    def test(f: Facts) -> bool:
        return any(part(f) for part in parts)

    return test


ALWAYS = Condition.compile({})
