"""The README and docs/: every link resolves, every command and make target they name exists,
and the journey file's JSON Schema accepts the shipped journey and refuses a typo."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from processor.cli import parser
from processor.journey.yamlfile import read_yaml
from processor.schemas import JOURNEY_SCHEMA
from processor.settings import DEFAULT_JOURNEY_FILE, REPO_ROOT

PAGES = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
CODE = re.compile(r"`([^`\n]+)`|```[a-z]*\n(.*?)```", re.S)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to dashes."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    return {_slug(h) for h in re.findall(r"^#+ (.+)$", text, re.M)}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_link_resolves(page: Path) -> None:
    broken = []
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if re.match(r"^[a-z]+:", target):
            continue  # a web address
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.exists():
            broken.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
            broken.append(f"{target}: no heading #{anchor}")
    assert broken == []


def _commands() -> dict[str, set[str]]:
    """`touchpoint` commands and, for those with actions, their actions."""
    out: dict[str, set[str]] = {}
    sub = next(a for a in parser()._actions if a.dest == "command")
    for name, command in sub.choices.items():  # type: ignore[union-attr]
        actions: set[str] = set()
        for action in command._actions:
            if action.dest == "action":
                actions |= set(action.choices or ())
        out[name] = actions
    return out


def _snippets(page: Path) -> list[str]:
    return [a or b for a, b in CODE.findall(page.read_text(encoding="utf-8"))]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_command_named_exists(page: Path) -> None:
    commands = _commands()
    targets = set(re.findall(r"^([a-z][a-z-]*):", (REPO_ROOT / "Makefile").read_text(), re.M))
    unknown = []
    for snippet in _snippets(page):
        for command, action in re.findall(r"\btouchpoint (\w[\w-]*)(?: (\w+))?", snippet):
            if command not in commands:
                unknown.append(f"touchpoint {command}")
            # An action in lower case (not a placeholder such as FILE) must be one it takes.
            elif action.islower() and commands[command] and action not in commands[command]:
                unknown.append(f"touchpoint {command} {action}")
        for target in re.findall(r"\bmake ([a-z][a-z-]*)", snippet):
            if target not in targets:
                unknown.append(f"make {target}")
    assert unknown == []


def test_the_journey_schema_accepts_the_shipped_journey_and_refuses_a_typo() -> None:
    schema = json.loads(JOURNEY_SCHEMA.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema)
    journey = read_yaml(DEFAULT_JOURNEY_FILE)
    assert [e.message for e in validator.iter_errors(journey)] == []
    journey["rules"][1]["wiat"] = "1h"
    journey["rules"][2]["wait"] = "1 hour"
    problems = sorted(list(e.absolute_path) for e in validator.iter_errors(journey))
    assert problems == [["rules", 1], ["rules", 2, "wait"]]
    first_line = DEFAULT_JOURNEY_FILE.read_text(encoding="utf-8").splitlines()[0]
    assert first_line == f"# yaml-language-server: $schema={JOURNEY_SCHEMA.name}"
