"""Scenario files: events with times and the expected stages and actions, on a simulated clock."""

from __future__ import annotations

import difflib
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
)

from processor.events import CHANNELS_OF, Channel, EventType, Touchpoint
from processor.journey.definition import Duration, Journey, parse_journey
from processor.journey.simulate import Simulation
from processor.journey.state import due_timers
from processor.journey.yamlfile import (
    JourneyFileError,
    apply_overrides,
    parse_duration,
    read_yaml,
    read_yaml_lines,
)
from processor.messages import Action


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EventStep(_Strict):
    """One touchpoint of the scenario's customer."""

    at: str | None = None
    event: EventType
    channel: Channel | None = None
    id: str | None = None
    occurred_at: str | None = None
    identity: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    properties: dict[str, Any] = Field(default_factory=dict)


class AdvanceStep(_Strict):
    """Let simulated time pass, firing the timers that come due."""

    advance: Duration


class EraseStep(_Strict):
    """The erase_customer command."""

    at: str | None = None
    erase: Literal[True]
    id: str = "erase-request"


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "advance" if "advance" in value else "erase" if "erase" in value else "event"
    return (
        "advance"
        if isinstance(value, AdvanceStep)
        else "erase"
        if isinstance(value, EraseStep)
        else "event"
    )


ScenarioStep = Annotated[
    Annotated[EventStep, Tag("event")]
    | Annotated[AdvanceStep, Tag("advance")]
    | Annotated[EraseStep, Tag("erase")],
    Discriminator(_kind),
]


class Expect(_Strict):
    """What must hold after the last step; absent keys are not checked."""

    stage: str | None = None
    transitions: list[str] | None = None
    actions: list[dict[str, Any]] | None = None
    suppressed: dict[str, int] | None = None
    cross_channel_conversions: int | None = None
    duplicates: int | None = None
    timers: list[str] | None = None


class Scenario(_Strict):
    """A whole scenario file.

    A scenario names a `start` time, a `customer`, optional `journey` (a path relative to the
    scenario; default the shipped one) and `durations` overrides (`rules.abandoned_cart.wait: 5s`),
    then `steps`: an event (`at`: `+1h` from start, or absolute; `event`, `channel`, `id`,
    `occurred_at` relative to `at`, `identity`, `context`, `properties`), `advance: 3d` (fires the
    due timers in order) or `erase: true`. `expect` lists what must hold at the end: `stage`
    (`none` when no state is left), `transitions` (`from -> to`, plus ` via web, email` to
    compare `channels_before_conversion`), `actions` (only the fields named
    in the first expected action are compared; times may be relative to start), `suppressed`
    (totals by reason, or `rule/reason` counts), `cross_channel_conversions`, `duplicates`,
    `timers` (names of the pending timers).
    """

    name: str
    journey: str | None = None
    durations: dict[str, Any] = Field(default_factory=dict)
    start: AwareDatetime
    customer: str = "C-1"
    timezone: str | None = None
    steps: list[ScenarioStep]
    expect: Expect


@dataclass(frozen=True, slots=True)
class Result:
    """The verdict on one scenario: a one-line summary and, on failure, a unified diff."""

    path: Path
    name: str
    passed: bool
    summary: str
    diff: str


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _when(value: str | datetime, base: datetime, where: str) -> datetime:
    if isinstance(value, datetime):
        return value
    text = str(value).strip()
    try:
        if text[:1] in "+-":
            delta = parse_duration(text[1:])
            return base + delta if text[0] == "+" else base - delta
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise JourneyFileError(f"{where}: {text!r} is neither +duration nor a time") from exc
    if parsed.tzinfo is None:
        raise JourneyFileError(f"{where}: {text!r} needs an offset, e.g. Z")
    return parsed


def _touchpoint(s: EventStep, sc: Scenario, n: int, at: datetime, origin: str) -> Touchpoint:
    occurred = _when(s.occurred_at, at, f"{origin}: steps.{n}.occurred_at") if s.occurred_at else at
    context = dict(s.context or {})
    if sc.timezone and "timezone" not in context:
        context["timezone"] = sc.timezone
    raw = {
        "event_id": s.id or f"s{n}",
        "type": s.event.value,
        "occurred_at": _iso(occurred),
        "identity": s.identity or {"customer_id": sc.customer},
        "context": context,
        "properties": s.properties,
    }
    try:
        return Touchpoint.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise JourneyFileError(f"{origin}: steps.{n}: {where}: {first['msg']}") from exc


def _play(sc: Scenario, journey: Journey, origin: str) -> Simulation:
    sim = Simulation(journey, sc.customer, sc.start)
    for n, s in enumerate(sc.steps):
        if isinstance(s, AdvanceStep):
            sim.advance_to(sim.clock + s.advance)
            continue
        at = _when(s.at, sc.start, f"{origin}: steps.{n}.at") if s.at else sim.clock
        if at < sim.clock:
            raise JourneyFileError(
                f"{origin}: steps.{n}.at: {_iso(at)} is before {_iso(sim.clock)}"
            )
        if isinstance(s, EraseStep):
            sim.erase(s.id, at)
            continue
        channel = s.channel or min(CHANNELS_OF[s.event], key=list(Channel).index)
        sim.event(_touchpoint(s, sc, n, at, origin), channel, at)
    return sim


def _actual(
    sim: Simulation, expect: Expect, start: datetime
) -> tuple[dict[str, Any], dict[str, Any]]:
    want: dict[str, Any] = {}
    got: dict[str, Any] = {}
    if expect.stage is not None:
        want["stage"], got["stage"] = expect.stage, sim.state.stage if sim.state else "none"
    if expect.transitions is not None:
        want["transitions"] = [" ".join(t.split()) for t in expect.transitions]
        via = any(" via " in t for t in want["transitions"])
        got["transitions"] = [
            f"{t.from_stage or 'none'} -> {t.to_stage}"
            + (
                f" via {', '.join(t.channels_before_conversion)}"
                if via and t.channels_before_conversion
                else ""
            )
            for t in sim.transitions
        ]
    if expect.actions is not None:
        fields = list(expect.actions[0]) if expect.actions else ["rule", "template"]
        times = ("send_after", "created_at")
        want["actions"] = [
            {
                f: _iso(_when(a[f], start, "expect")) if f in times and f in a else a.get(f)
                for f in fields
            }
            for a in expect.actions
        ]
        got["actions"] = [{f: _field(a, f) for f in fields} for a in sim.actions]
    if expect.suppressed is not None:
        want["suppressed"] = {k: v for k, v in sorted(expect.suppressed.items()) if v}
        per_rule = any("/" in k for k in expect.suppressed)
        counts: dict[str, int] = {}
        for (rule, reason), n in sim.suppressed.items():
            k = f"{rule}/{reason}" if per_rule else reason
            counts[k] = counts.get(k, 0) + n
        got["suppressed"] = dict(sorted(counts.items()))
    if expect.cross_channel_conversions is not None:
        want["cross_channel_conversions"] = expect.cross_channel_conversions
        got["cross_channel_conversions"] = sim.cross_channel_conversions
    if expect.duplicates is not None:
        want["duplicates"], got["duplicates"] = expect.duplicates, sim.duplicates
    if expect.timers is not None:
        want["timers"] = sorted(expect.timers)
        got["timers"] = sorted(t.name for t in due_timers(sim.state))
    return want, got


def _dump(doc: dict[str, Any]) -> list[str]:
    return str(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)).splitlines()


def _field(action: Action, name: str) -> Any:
    value = getattr(action, name, None)
    if isinstance(value, datetime):
        return _iso(value)
    return value.value if isinstance(value, Enum) else value


def load_scenario(path: Path) -> Scenario:
    """Read and validate a scenario file, or raise JourneyFileError naming the path inside it."""
    try:
        return Scenario.model_validate(read_yaml(path))
    except ValidationError as exc:
        lines = [f"{path}: {'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise JourneyFileError("\n".join(lines)) from exc


def run_scenario(path: Path, default_journey: Path) -> Result:
    """Run one scenario file through the engine and compare with its expectations."""
    started = time.perf_counter()
    sc = load_scenario(path)
    journey_file = (path.parent / sc.journey) if sc.journey else default_journey
    # Overrides are the scenario's: an error in one names the scenario file.
    data, lines = read_yaml_lines(journey_file)
    data = apply_overrides(data, dict(sc.durations), str(path))
    journey = parse_journey(data, str(journey_file), lines)
    sim = _play(sc, journey, str(path))
    want, got = _actual(sim, sc.expect, sc.start)
    ms = (time.perf_counter() - started) * 1000
    diff = "\n".join(
        difflib.unified_diff(_dump(want), _dump(got), f"{path} (expected)", "actual", lineterm="")
    )
    passed = want == got
    verdict = "PASS" if passed else "FAIL"
    summary = (
        f"{verdict} {path}: {sc.name} ({len(sc.steps)} steps, {len(sim.transitions)} transitions, "
        f"{len(sim.actions)} actions, {ms:.1f} ms)"
    )
    return Result(path, sc.name, passed, summary, diff)
