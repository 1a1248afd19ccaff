"""YAML 1.2 reading, duration strings and `durations:` overrides for journey and scenario files."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
DURATION_PATTERN = r"^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w))+$"
_DURATION = re.compile(DURATION_PATTERN)
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_duration(value: Any) -> timedelta:
    """`45s`, `1h`, `7d`, `1h30m` → timedelta. A bare number is refused: units must be written."""
    if isinstance(value, timedelta):
        return value
    text = value.replace(" ", "") if isinstance(value, str) else ""
    if not _DURATION.match(text):
        raise ValueError(f"{value!r} is not a duration such as 45s, 1h or 7d")
    return timedelta(seconds=sum(float(n) * _UNIT_S[u] for n, u in _PART.findall(text)))


class Yaml12Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans: only true/false, so `on:` stays the word "on"."""


Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
# Timestamps stay strings: pydantic parses them, and a naive YAML datetime would lose the zone.
Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in Yaml12Loader.yaml_implicit_resolvers.items()
}


class JourneyFileError(ValueError):
    """A journey or scenario file is unreadable or invalid; the message names file and path."""


#: Where each value of a parsed file starts: its path (keys and list indexes) -> line number.
Lines = dict[tuple[str | int, ...], int]


def _lines_of(node: yaml.Node, path: tuple[str | int, ...], out: Lines) -> None:
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            _lines_of(value, (*path, str(key.value)), out)
            out[(*path, str(key.value))] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _lines_of(item, (*path, i), out)


def read_yaml(path: Path) -> Any:
    """Parse one YAML file, or raise JourneyFileError naming it."""
    return read_yaml_lines(path)[0]


def read_yaml_lines(path: Path) -> tuple[Any, Lines]:
    """Parse one YAML file, with the line of each value for error messages."""
    try:
        text = path.read_text(encoding="utf-8")
        data = yaml.load(text, Loader=Yaml12Loader)  # noqa: S506 (a SafeLoader)
        node = yaml.compose(text, Loader=Yaml12Loader)
    except OSError as exc:
        raise JourneyFileError(f"{path}: cannot read: {exc.strerror}") from exc
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f":{mark.line + 1}" if mark is not None else ""
        raise JourneyFileError(f"{path}{where}: not valid YAML: {exc.problem}") from exc
    except yaml.YAMLError as exc:
        raise JourneyFileError(f"{path}: not valid YAML: {exc}") from exc
    lines: Lines = {}
    if node is not None:
        _lines_of(node, (), lines)
    return data, lines


def line_of(lines: Lines, loc: tuple[str | int, ...]) -> int | None:
    """The line of `loc`, or of the nearest enclosing value the file has."""
    for n in range(len(loc), -1, -1):
        if loc[:n] in lines:
            return lines[loc[:n]]
    return None


def apply_overrides(data: Any, overrides: dict[str, Any], origin: str) -> Any:
    """Set `a.b.c: value` paths in parsed YAML; in a list, a segment names an item by `name`.

    Used by scenarios to run the shipped journey with other durations, e.g.
    `rules.abandoned_cart.wait: 5s` or `transitions.lapses.after: 1h`.
    """
    for path, value in overrides.items():
        node = data
        parts = str(path).split(".")
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if isinstance(node, list):
                match = [x for x in node if isinstance(x, dict) and x.get("name") == part]
                if not match and part.isdigit() and int(part) < len(node):
                    match = [node[int(part)]]
                if not match:
                    raise JourneyFileError(f"{origin}: durations.{path}: no item named {part!r}")
                if last:
                    raise JourneyFileError(
                        f"{origin}: durations.{path}: names an item, not a value"
                    )
                node = match[0]
            elif isinstance(node, dict):
                if last:
                    node[part] = value
                elif part in node:
                    node = node[part]
                else:
                    raise JourneyFileError(f"{origin}: durations.{path}: {part!r} is not set there")
            else:
                raise JourneyFileError(f"{origin}: durations.{path}: {part!r} is not a mapping")
    return data
