"""The journey file: a declarative YAML definition, validated and compiled once at load time."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from processor.events import EventType
from processor.journey.conditions import ALWAYS, Condition
from processor.journey.fields import ActionChannel, ActionKind, Duration, Strict
from processor.journey.params import Params
from processor.journey.policy_models import Policies
from processor.journey.yamlfile import (
    JourneyFileError,
    Lines,
    apply_overrides,
    line_of,
    parse_duration,
    read_yaml_lines,
)
from processor.suggest import did_you_mean

__all__ = [
    "ERASED",
    "ActionChannel",
    "ActionKind",
    "Duration",
    "Journey",
    "JourneyFileError",
    "Step",
    "load_journey",
    "parse_duration",
]

ERASED = "erased"


class JourneyProblem(Exception):
    """An inconsistency the field types cannot see: where in the file (keys and indexes) and
    what. Not a ValueError, so that pydantic passes it on instead of placing it at the top."""

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc
        self.message = message


def _stage(stage: str, known: list[str], loc: tuple[str | int, ...]) -> None:
    if stage not in known:
        raise JourneyProblem(loc, f"unknown stage {stage!r}{did_you_mean(stage, known)}")


class TransitionDef(Strict):
    """A stage move: from one of `from`, on one of the event types (or `after` a time), to `to`."""

    name: str
    from_: tuple[str, ...] = Field(alias="from", min_length=1)
    on: tuple[EventType, ...] = ()
    after: Duration | None = None
    since: Literal["stage_entry", "last_purchase"] = "stage_entry"
    if_: Condition = Field(default=ALWAYS, alias="if")
    to: str

    @model_validator(mode="after")
    def _one_trigger(self) -> TransitionDef:
        if bool(self.on) == (self.after is not None):
            raise ValueError(f"{self.name}: needs exactly one of `on` (events) or `after` (time)")
        return self


class EveryLimit(Strict):
    """At most once per `every` (per key value when `per_key`)."""

    every: Duration
    per_key: bool = False


Limit = Literal["always", "once", "once_per_key"] | EveryLimit
_INHERITED = ("action", "channel", "template", "params", "limit", "stale_after")
_TRIGGERS = ("on", "on_enter", "after", "if_", "key", "wait", "cancel_on", "mark")


class _StepFields(Strict):
    on: tuple[EventType, ...] = ()
    on_enter: tuple[str, ...] = ()
    after: Duration | None = None
    if_: Condition | None = Field(default=None, alias="if")
    key: str | None = None
    wait: Duration | None = None
    cancel_on: tuple[EventType, ...] = ()
    action: ActionKind | None = None
    channel: ActionChannel | None = None
    template: str | None = None
    params: Params | None = None
    limit: Limit | None = None
    stale_after: Duration | None = None
    mark: Literal["cross_channel_conversion"] | None = None


class StepDef(_StepFields):
    """One step of a rule; `name` defaults to the rule's name for the first step."""

    name: str | None = None


class RuleDef(_StepFields):
    """An action (or a chain of steps) that events, stage entries or time trigger."""

    name: str
    description: str = ""
    steps: tuple[StepDef, ...] = ()

    @model_validator(mode="after")
    def _steps_or_single(self) -> RuleDef:
        if self.steps:
            given = [f for f in _TRIGGERS if f in self.model_fields_set]
            if given:
                raise ValueError(f"{self.name}: with `steps`, set {given[0]} on each step")
        return self


@dataclass(frozen=True, slots=True)
class Step:
    """A rule step as the engine runs it: the rule's defaults merged in."""

    rule: str
    name: str
    on: frozenset[EventType]
    on_enter: frozenset[str]
    after: timedelta | None
    when: Condition
    key: str | None
    wait: timedelta | None
    cancel_on: frozenset[EventType]
    action: str | None
    channel: str | None
    template: str | None
    params: Params
    limit: Limit
    stale_after: timedelta
    mark: str | None
    #: The step that follows this one `after` a delay, if any.
    follow_up: str | None


@dataclass(frozen=True, slots=True)
class Sending:
    """How the policies treat a step's actions, decided once from the journey file."""

    #: Its template is transactional: no opt-in needed, not capped, no quiet hours.
    transactional: bool
    #: Counts towards (and is limited by) the frequency caps.
    capped: bool
    #: Held back by quiet hours.
    quiet: bool


class Journey(Strict):
    """A whole journey definition."""

    journey: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,63}$")
    version: int = 1
    initial_stage: str
    stages: dict[str, str]
    transitions: tuple[TransitionDef, ...] = ()
    rules: tuple[RuleDef, ...] = ()
    policies: Policies

    @model_validator(mode="after")
    def _consistent(self) -> Journey:
        known = list(self.stages)
        if ERASED not in known:
            raise JourneyProblem(("stages",), f"the terminal stage {ERASED!r} must be declared")
        _stage(self.initial_stage, known, ("initial_stage",))
        for i, t in enumerate(self.transitions):
            for j, stage in enumerate(t.from_):
                _stage(stage, known, ("transitions", i, "from", j))
            _stage(t.to, known, ("transitions", i, "to"))
            if ERASED in (*t.from_, t.to):
                raise JourneyProblem(
                    ("transitions", i), f"{t.name!r}: only erase_customer enters erased"
                )
        names = [s.name for s in self.steps]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise JourneyProblem(
                ("rules",), f"step names must be unique, repeated: {', '.join(dupes)}"
            )
        for i, rule in enumerate(self.rules):
            for n, spec in enumerate(rule.steps or (rule,)):
                where: tuple[str | int, ...] = (
                    ("rules", i, "steps", n) if rule.steps else ("rules", i)
                )
                for k, stage in enumerate(spec.on_enter):
                    _stage(stage, known, (*where, "on_enter", k))
        for k, stage in enumerate(self.policies.merge_order):
            _stage(stage, known, ("policies", "merge_order", k))
        return self

    @cached_property
    def steps(self) -> tuple[Step, ...]:
        """Every rule step, merged with its rule's defaults, in file order."""
        return tuple(s for i, r in enumerate(self.rules) for s in _resolve(i, r, self.policies))

    @cached_property
    def step_by_name(self) -> dict[str, Step]:
        """Steps by their unique name."""
        return {s.name: s for s in self.steps}

    # The journey compiled for the engine: what each event type or stage entry can reach, so
    # that an event evaluates only the transitions, steps and cancellations that can match it.

    @cached_property
    def _step_position(self) -> dict[str, int]:
        return {s.name: i for i, s in enumerate(self.steps)}

    @cached_property
    def steps_on_event(self) -> dict[str, tuple[Step, ...]]:
        """Event type -> the steps it triggers (not follow-ups), in file order."""
        out: dict[str, list[Step]] = {}
        for s in self.steps:
            for typ in s.on:
                out.setdefault(typ.value, []).append(s)
        return {typ: tuple(steps) for typ, steps in out.items()}

    @cached_property
    def steps_on_entry(self) -> dict[str, tuple[Step, ...]]:
        """Stage -> the steps entering it triggers, in file order."""
        out: dict[str, list[Step]] = {}
        for s in self.steps:
            for stage in s.on_enter:
                out.setdefault(stage, []).append(s)
        return {stage: tuple(steps) for stage, steps in out.items()}

    @cached_property
    def _triggered(self) -> dict[tuple[str | None, tuple[str, ...]], tuple[Step, ...]]:
        return {}

    def triggered(self, event_type: str | None, entered: list[str]) -> tuple[Step, ...]:
        """The steps this event type (None for a timer) or these stage entries trigger, in file
        order, each once (worked out once per combination, then remembered)."""
        if not entered:
            return self.steps_on_event.get(event_type, ()) if event_type is not None else ()
        known = self._triggered
        combination = (event_type, tuple(entered))
        steps = known.get(combination)
        if steps is None:
            on_event = self.steps_on_event.get(event_type, ()) if event_type is not None else ()
            chosen = {s.name: s for s in on_event}
            for stage in entered:
                chosen.update((s.name, s) for s in self.steps_on_entry.get(stage, ()))
            position = self._step_position
            steps = known[combination] = tuple(
                sorted(chosen.values(), key=lambda s: position[s.name])
            )
        return steps

    @cached_property
    def moves_on_event(self) -> dict[tuple[str, str], tuple[TransitionDef, ...]]:
        """(stage, event type) -> the transitions that event may take from that stage, in file
        order."""
        out: dict[tuple[str, str], list[TransitionDef]] = {}
        for t in self.transitions:
            for stage in t.from_:
                for typ in t.on:
                    out.setdefault((stage, typ.value), []).append(t)
        return {k: tuple(v) for k, v in out.items()}

    @cached_property
    def timed_moves(self) -> dict[str, TransitionDef]:
        """Timer name (`transition:<name>`) -> the time-driven transition it fires, file order."""
        return {f"transition:{t.name}": t for t in self.transitions if t.after is not None}

    @cached_property
    def timed_moves_from(self) -> dict[str, tuple[tuple[str, TransitionDef, float], ...]]:
        """Stage -> (timer name, transition, seconds from its anchor to its due time) of the
        time-driven transitions that leave it, in file order."""
        out: dict[str, list[tuple[str, TransitionDef, float]]] = {}
        for name, t in self.timed_moves.items():
            assert t.after is not None
            for stage in t.from_:
                out.setdefault(stage, []).append((name, t, t.after.total_seconds()))
        return {stage: tuple(moves) for stage, moves in out.items()}

    @cached_property
    def waits(self) -> dict[str, Step]:
        """Timer name (`wait:<step>`, `after:<step>`) -> the step whose wait or follow-up it is."""
        return {f"{kind}:{s.name}": s for s in self.steps for kind in ("wait", "after")}

    @cached_property
    def cancelling(self) -> frozenset[str]:
        """Event types that cancel some step's pending wait or follow-up."""
        return frozenset(typ.value for s in self.steps for typ in s.cancel_on)

    @cached_property
    def tracked(self) -> dict[str, tuple[str, ...]]:
        """Event type -> properties to remember in `recent` for counting conditions and params."""
        pairs: set[tuple[str, str]] = set()
        for s in self.steps:
            pairs |= s.when.tracked
            if any("viewed." in str(v) for v in s.params.source.values()):
                pairs.add((EventType.product_view.value, "product_id"))
        for t in self.transitions:
            pairs |= t.if_.tracked
        # Cancelling events are remembered too: when two profiles merge, a wait armed in one
        # is dropped if the other saw its cancellation (merge.fold).
        for s in self.steps:
            for cancelling in s.cancel_on:
                pairs.add((cancelling.value, s.key or ""))
        out: dict[str, list[str]] = {}
        for typ, prop in sorted(pairs):
            out.setdefault(typ, [])
            if prop:
                out[typ].append(prop)
        return {k: tuple(v) for k, v in out.items()}

    @cached_property
    def sending(self) -> dict[str, Sending]:
        """Step name -> how the policies treat its actions (the same for every action)."""
        p = self.policies
        caps, quiet = p.frequency_caps, p.quiet_hours
        out = {}
        for s in self.steps:
            transactional = s.template in p.transactional_templates
            out[s.name] = Sending(
                transactional=transactional,
                capped=caps is not None and s.channel in caps.channels and not transactional,
                quiet=quiet is not None and s.channel in quiet.channels and not transactional,
            )
        return out

    @cached_property
    def recent_window_s(self) -> float:
        """How long `recent` events matter: the longest count window, or a day for params."""
        windows = [s.when.window_s for s in self.steps] + [t.if_.window_s for t in self.transitions]
        # ...and for as long as a wait or follow-up they may cancel can be pending.
        waits = [(s.wait or s.after or timedelta()).total_seconds() for s in self.steps]
        return max([*windows, *waits, 86400.0])


def _resolve(index: int, rule: RuleDef, policies: Policies) -> list[Step]:
    specs: list[StepDef] = list(rule.steps)
    if not specs:
        own = rule.model_fields_set & {*_TRIGGERS, *_INHERITED}
        specs = [StepDef.model_validate({f: getattr(rule, f) for f in own})]
    out: list[Step] = []
    for n, spec in enumerate(specs):
        where: tuple[str | int, ...] = (
            ("rules", index, "steps", n) if rule.steps else ("rules", index)
        )
        name = spec.name or (rule.name if n == 0 else None)
        if name is None:
            raise JourneyProblem(where, "every step after the first needs a `name`")
        merged = {
            f: getattr(spec, f) if getattr(spec, f) is not None else getattr(rule, f)
            for f in _INHERITED
        }
        triggers = sum((bool(spec.on), bool(spec.on_enter), spec.after is not None))
        if triggers != 1:
            raise JourneyProblem(where, f"{name!r}: needs exactly one of on, on_enter or after")
        if spec.after is not None and n == 0:
            raise JourneyProblem(
                where, f"{name!r}: `after` follows a previous step; the first has none"
            )
        if (spec.mark is None) == (merged["action"] is None):
            raise JourneyProblem(where, f"{name!r}: needs either an action or a mark")
        if merged["action"] is not None and (
            merged["channel"] is None or merged["template"] is None
        ):
            raise JourneyProblem(where, f"{name!r}: an action needs a channel and a template")
        if spec.cancel_on and spec.wait is None and spec.after is None:
            raise JourneyProblem(where, f"{name!r}: cancel_on needs a wait or an after")
        limit: Limit = merged["limit"] or "always"
        if (limit == "once_per_key" or getattr(limit, "per_key", False)) and spec.key is None:
            raise JourneyProblem(where, f"{name!r}: a per-key limit needs a `key`")
        nxt = specs[n + 1] if n + 1 < len(specs) else None
        out.append(
            Step(
                rule=rule.name,
                name=name,
                on=frozenset(spec.on),
                on_enter=frozenset(spec.on_enter),
                after=spec.after,
                when=spec.if_ or ALWAYS,
                key=spec.key,
                wait=spec.wait,
                cancel_on=frozenset(spec.cancel_on),
                action=merged["action"],
                channel=merged["channel"],
                template=merged["template"],
                params=merged["params"] or Params({}),
                limit=limit,
                stale_after=merged["stale_after"] or policies.stale_after,
                mark=spec.mark,
                follow_up=nxt.name if nxt is not None and nxt.after is not None else None,
            )
        )
    return out


def _loc(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def _known_keys() -> set[str]:
    """Every key a journey file can use: the fields (or aliases) of its models."""
    keys: set[str] = set()
    models: list[type[Strict]] = [Strict]
    while models:
        model = models.pop()
        models += model.__subclasses__()
        keys |= {f.alias or name for name, f in model.model_fields.items()}
    return keys


_EVENT_TYPES = {t.value for t in EventType}


def _message(error: Any) -> str:
    """pydantic's message, with the unknown key or value named and the likely one suggested."""
    kind, given = error["type"], error.get("input")
    if kind == "extra_forbidden":
        key = error["loc"][-1]
        return f"unknown key {key!r}{did_you_mean(key, _known_keys())}"
    if kind in ("enum", "literal_error") and isinstance(given, str):
        options = re.findall(r"'([^']*)'", error["ctx"]["expected"])
        hint = did_you_mean(given, options)
        if hint:
            what = "event type" if set(options) == _EVENT_TYPES else "value"
            return f"unknown {what} {given!r}{hint}"
    return str(error["msg"]).removeprefix("Value error, ")


def parse_journey(data: Any, origin: str, lines: Lines | None = None) -> Journey:
    """Validate parsed YAML as a journey, or raise JourneyFileError with one line per problem:
    `FILE:LINE: path.in.file: what` (the line when `lines` of the file are known)."""
    try:
        return Journey.model_validate(data)
    except ValidationError as exc:
        problems = [(tuple(e["loc"]), _message(e)) for e in exc.errors()]
    except JourneyProblem as exc:
        problems = [(exc.loc, exc.message)]

    def where(loc: tuple[str | int, ...]) -> str:
        line = line_of(lines, loc) if lines else None
        return f"{origin}:{line}" if line is not None else origin

    raise JourneyFileError("\n".join(f"{where(loc)}: {_loc(loc)}: {msg}" for loc, msg in problems))


def load_journey(path: Path, durations: dict[str, Any] | None = None) -> Journey:
    """Read and validate a journey file (with optional `durations` overrides by path)."""
    data, lines = read_yaml_lines(path)
    if durations:
        data = apply_overrides(data, durations, str(path))
    return parse_journey(data, str(path), lines)
