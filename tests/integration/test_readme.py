"""The README's and the docs' promises: the shell examples work, the configuration table and the
journey diagram are current."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import orjson
import pytest

from processor.settings import REPO_ROOT, reference_markdown
from tests.support.worker import WorkerProcess

README = REPO_ROOT / "README.md"
OPERATIONS = REPO_ROOT / "docs" / "operations.md"
JOURNEYS = REPO_ROOT / "docs" / "journeys.md"


def _between(start: str, end: str, path: Path = README) -> str:
    text = path.read_text(encoding="utf-8")
    match = re.search(re.escape(start) + r"\n(.*?)" + re.escape(end), text, re.S)
    assert match, f"{path.name} lacks the block {start} … {end}"
    return match.group(1)


def test_configuration_table_is_generated_from_the_settings() -> None:
    block = _between("<!-- settings-reference -->", "<!-- /settings-reference -->", OPERATIONS)
    assert block == reference_markdown()


@pytest.mark.broker
def test_try_it_commands_publish_and_read_all_three_outputs(
    topics_ready: str, tmp_path: Path
) -> None:
    block = _between("<!-- readme-test: try-it -->", "<!-- /readme-test -->")
    script = block.removeprefix("```sh\n").removesuffix("```\n")
    assert "export TOUCHPOINT_KAFKA_BOOTSTRAP=127.0.0.1:19092" in script
    script = script.replace("127.0.0.1:19092", topics_ready)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOUCHPOINT_")}
    with WorkerProcess(topics_ready, tmp_path):
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=REPO_ROOT, env=env, capture_output=True, timeout=120, check=False,
        )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()
    assert b"published 7 message(s) from topics/examples/events.jsonl" in result.stderr
    out = [orjson.loads(line) for line in result.stdout.splitlines()]
    transitions = [
        (o["customer_id"], o["from_stage"], o["to_stage"]) for o in out if "to_stage" in o
    ]
    assert sorted(transitions, key=str) == sorted(
        [
            ("anon:ck-77f", None, "awareness"),
            ("C-1001", None, "awareness"),
            ("C-1001", "awareness", "consideration"),
            ("C-1001", "consideration", "purchase"),
            ("loyalty:L-555", None, "awareness"),
            ("loyalty:L-555", "awareness", "purchase"),
        ],
        key=str,
    )
    actions = [(o["customer_id"], o["template"]) for o in out if "action_id" in o]
    assert ("C-1001", "welcome") in actions
    letters = [o for o in out if "error" in o]
    assert [(lt["error"]["kind"], lt["source"]["key"]) for lt in letters] == [
        ("unknown_type", "ck-99")
    ]


def test_journey_graph_is_the_default_journeys(capsys: pytest.CaptureFixture[str]) -> None:
    from processor.cli import main

    assert main(["journey", "graph", str(REPO_ROOT / "processor/journey/lifecycle.yaml")]) == 0
    block = _between("<!-- journey-graph -->", "<!-- /journey-graph -->", JOURNEYS)
    assert block == "```mermaid\n" + capsys.readouterr().out + "```\n"
