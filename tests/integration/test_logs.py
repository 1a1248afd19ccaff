"""TOUCHPOINT_LOG_FORMAT=json: every line the worker writes is one JSON object."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from tests.support.worker import WorkerProcess

pytestmark = pytest.mark.broker


def test_the_worker_logs_json_lines_only(topics_ready: str, tmp_path: Path) -> None:
    worker = WorkerProcess(
        topics_ready, tmp_path, TOUCHPOINT_LOG_FORMAT="json", TOUCHPOINT_LOG_LEVEL="info"
    )
    with worker:
        pass
    lines = [line for line in worker.log_path.read_text().splitlines() if line.strip()]
    assert len(lines) >= 3, lines
    parsed = []
    for line in lines:
        try:
            parsed.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            pytest.fail(f"not a JSON line: {line!r}")
    assert all({"time", "level", "logger", "message"} <= set(p) for p in parsed)
    assert any(p["message"].startswith("worker on http://") for p in parsed)
