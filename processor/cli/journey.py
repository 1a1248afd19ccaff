"""`touchpoint journey validate|graph|test`: tools for journey files and scenarios."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def _journey_test(paths: list[Path]) -> int:
    from processor.journey.scenario import run_scenario
    from processor.journey.yamlfile import JourneyFileError
    from processor.settings import DEFAULT_JOURNEY_FILE

    files = [f for p in paths for f in (sorted(p.glob("*.yaml")) if p.is_dir() else [p])]
    failed = 0
    for path in files:
        try:
            result = run_scenario(path, DEFAULT_JOURNEY_FILE)
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


def cmd_journey(args: argparse.Namespace) -> int:
    from processor.journey.definition import JourneyFileError, load_journey
    from processor.journey.graph import mermaid

    if args.action == "test":
        return _journey_test(args.files)
    if len(args.files) != 1:
        print(f"touchpoint journey {args.action}: takes exactly one FILE", file=sys.stderr)
        return 2
    path = args.files[0]
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


def register(sub: Any) -> None:
    """Add the command to the `touchpoint` parser."""
    journey = sub.add_parser(
        "journey",
        help="journey file tools: validate, graph, test",
        description="validate FILE: exit 0 for a valid journey file, else 1 with one line "
        "per problem, naming the file and the path inside it. graph FILE: print the journey "
        "as a Mermaid flowchart. test SCENARIO...: run scenario files (or every *.yaml in a "
        "directory) on a simulated clock; one line per scenario, a diff for each failure, "
        "exit 1 if any failed.",
    )
    journey.add_argument("action", choices=["validate", "graph", "test"])
    journey.add_argument("files", type=Path, nargs="+", metavar="FILE")
    journey.set_defaults(func=cmd_journey)
