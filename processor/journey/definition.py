"""The journey file: a declarative YAML definition, validated once at load time."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from processor.events import EventType

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_duration(value: Any) -> timedelta:
    """`45s`, `1h`, `7d` → timedelta. A bare number is refused: the unit must be written."""
    if isinstance(value, timedelta):
        return value
    match = _DURATION.match(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"{value!r} is not a duration such as 45s, 1h or 7d")
    return timedelta(seconds=float(match.group(1)) * _UNIT_S[match.group(2)])


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
ActionKind = Literal[
    "send_email",
    "send_sms",
    "send_push",
    "issue_coupon",
    "retarget_ad",
    "create_support_task",
    "tag_customer",
]
ActionChannel = Literal["email", "sms", "push", "ads", "crm"]
ERASED = "erased"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class TransitionDef(_Strict):
    """A stage move: from one of `from_`, on one of the event types, to `to`."""

    name: str
    from_: tuple[str, ...] = Field(alias="from", min_length=1)
    on: tuple[EventType, ...] = Field(min_length=1)
    to: str


class RuleDef(_Strict):
    """An action that an event triggers, subject to the journey's policies."""

    name: str
    on: tuple[EventType, ...] = Field(min_length=1)
    action: ActionKind
    channel: ActionChannel
    template: str
    limit: Literal["once", "every"] = "every"


class Policies(_Strict):
    """Rules that apply to every action and transition."""

    transactional_templates: tuple[str, ...] = ()
    conversion_lookback: Duration = timedelta(days=14)
    dedupe_window_events: int = Field(default=256, ge=1, le=100_000)


class Journey(_Strict):
    """A whole journey definition."""

    journey: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,63}$")
    version: int = 1
    initial_stage: str
    stages: dict[str, str]
    transitions: tuple[TransitionDef, ...] = ()
    rules: tuple[RuleDef, ...] = ()
    policies: Policies = Policies()

    @model_validator(mode="after")
    def _stages_exist(self) -> Journey:
        known = set(self.stages)
        if ERASED not in known:
            raise ValueError(f"stages: the terminal stage {ERASED!r} must be declared")
        if self.initial_stage not in known:
            raise ValueError(f"initial_stage: {self.initial_stage!r} is not a declared stage")
        for i, t in enumerate(self.transitions):
            for stage in (*t.from_, t.to):
                if stage not in known:
                    raise ValueError(f"transitions.{i} ({t.name}): unknown stage {stage!r}")
        names = [r.name for r in self.rules]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"rules: names must be unique, repeated: {', '.join(dupes)}")
        return self


class JourneyFileError(ValueError):
    """A journey file is unreadable or invalid; the message names the file and the path."""


class _Yaml12Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans: only true/false, so `on:` stays the word "on"."""


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def _loc(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def load_journey(path: Path) -> Journey:
    """Read and validate a journey file, or raise JourneyFileError with precise messages."""
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_Yaml12Loader)  # noqa: S506 (a SafeLoader)
    except OSError as exc:
        raise JourneyFileError(f"{path}: cannot read: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise JourneyFileError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return Journey.model_validate(data)
    except ValidationError as exc:
        lines = [f"{path}: {_loc(e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise JourneyFileError("\n".join(lines)) from exc
