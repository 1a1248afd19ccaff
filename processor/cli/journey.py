"""`touchpoint journey validate|graph|test`: tools for journey files and scenarios."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def _journey_file(given: Path | None) -> Path:
    """The given journey, else the worker's (TOUCHPOINT_JOURNEY_FILE, else the shipped one)."""
    from processor.cli.common import load_settings

    return given if given is not None else load_settings().journey_file


def cmd_test(args: argparse.Namespace) -> int:
    from processor.journey.scenario import run_scenario
    from processor.journey.yamlfile import JourneyFileError

    journey = _journey_file(args.journey)
    paths: list[Path] = args.scenarios
    files = [f for p in paths for f in (sorted(p.glob("*.yaml")) if p.is_dir() else [p])]
    failed = 0
    for path in files:
        try:
            result = run_scenario(path, journey)
        except JourneyFileError as exc:
            failed += 1
            print(f"ERROR {path}: {exc}")
            continue
        print(result.summary)
        if not result.passed:
            failed += 1
            print(result.diff)
    print(f"{len(files) - failed} passed, {failed} failed")
    return 1 if failed or not files else 0


def cmd_validate_or_graph(args: argparse.Namespace) -> int:
    from processor.journey.definition import JourneyFileError, load_journey
    from processor.journey.graph import mermaid

    path = _journey_file(args.file)
    try:
        journey = load_journey(path)
    except JourneyFileError as exc:
        print(exc, file=sys.stderr)
        return 1
    if args.action == "graph":
        print(mermaid(journey), end="")
        return 0
    print(
        f"{path}: journey {journey.journey!r} is valid: {len(journey.stages)} stages, "
        f"{len(journey.transitions)} transitions, {len(journey.rules)} rules"
    )
    return 0


_WHICH = "default: TOUCHPOINT_JOURNEY_FILE, else the shipped lifecycle journey"


def register(sub: Any) -> None:
    """Add the command to the `touchpoint` parser."""
    journey = sub.add_parser(
        "journey",
        help="journey file tools: validate, graph, test",
        description="Check, draw and test a journey file before a worker runs it.",
    )
    actions = journey.add_subparsers(dest="action", required=True, metavar="ACTION")
    validate = actions.add_parser(
        "validate",
        help="check a journey file",
        description="Exit 0 for a valid journey file, else 1 with one line per problem: the "
        "file, the line, the path inside it and what is wrong (with the likely meant stage, "
        "event type or key).",
    )
    graph = actions.add_parser(
        "graph", help="draw a journey", description="Print the journey as a Mermaid flowchart."
    )
    for p in (validate, graph):
        p.add_argument("file", type=Path, nargs="?", metavar="FILE", help=f"journey ({_WHICH})")
        p.set_defaults(func=cmd_validate_or_graph)
    test = actions.add_parser(
        "test",
        help="run scenario files against a journey",
        description="Run scenario files (or every *.yaml in a folder) through the engine on a "
        "simulated clock; one line per scenario, a diff for each failure, exit 1 if any "
        "failed. A scenario that names its own `journey:` file uses that one.",
    )
    test.add_argument("scenarios", type=Path, nargs="+", metavar="SCENARIO")
    test.add_argument("--journey", type=Path, default=None, help=f"the journey file ({_WHICH})")
    test.set_defaults(func=cmd_test)
