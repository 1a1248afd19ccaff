"""Every command that talks to Kafka, pointed where nothing listens: one line, exit 1, no noise."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from processor.kafka.embedded import free_port

COMMANDS = {
    "topics check": ["topics", "check"],
    "topics apply": ["topics", "apply"],
    "publish": ["publish", "--topic", "touchpoints.web", "{events}"],
    "tail": ["tail", "actions", "--max", "1"],
    "deadletter replay": ["deadletter", "replay", "--kind", "unknown_type"],
    "simulate": ["simulate", "--customers", "3", "--duration", "1"],
    "run": ["run"],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_unreachable_broker_gives_one_line(command: str, tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text('{"channel": "web"}\n')
    address = f"127.0.0.1:{free_port()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOUCHPOINT_")}
    env |= {"TOUCHPOINT_KAFKA_BOOTSTRAP": address, "TOUCHPOINT_DATA_DIR": str(tmp_path / "d")}
    args = [a.format(events=events) for a in COMMANDS[command]]
    result = subprocess.run(
        [sys.executable, "-m", "processor.cli", *args],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"touchpoint: cannot connect to Kafka at {address}: "), line
    assert "Connect call failed" in line, line
    assert "TOUCHPOINT_KAFKA_BOOTSTRAP" in line
