"""`touchpoint demo`: a live summary within a minute, and Ctrl-C leaves no process behind."""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from processor.kafka.embedded import free_port

pytestmark = pytest.mark.broker


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead too; only its parent's wait would remove it.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def test_demo_prints_a_summary_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    broker_port, web_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOUCHPOINT_")}
    env |= {"TOUCHPOINT_WEB_PORT": str(web_port), "TOUCHPOINT_DATA_DIR": str(tmp_path / "data")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "processor.cli", "demo", "--broker-port", str(broker_port),
         "--refresh", "2"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    stdout = proc.stdout

    def read() -> None:
        for line in stdout:
            lines.put(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    seen: list[str] = []
    started = time.monotonic()
    try:
        while not any(line.startswith("── touchpoint demo") for line in seen):
            assert time.monotonic() - started < 60, "no summary within 60 s:\n" + "".join(seen)
            try:
                seen.append(lines.get(timeout=1))
            except queue.Empty:
                assert proc.poll() is None, "".join(seen)
        # One more summary: the simulator has been publishing for a few seconds by then.
        time.sleep(5)
        text = "".join(seen)
        worker = int(re.search(r"worker ready \(pid (\d+)\)", text).group(1))  # type: ignore[union-attr]
        broker = int(re.search(r"embedded broker on \S+ \(pid (\d+)\)", text).group(1))  # type: ignore[union-attr]
        assert f"http://127.0.0.1:{web_port}" in text
        assert "compressed 1440x" in text
        proc.send_signal(signal.SIGINT)
        code = proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(10)
        stdout.close()
    while not lines.empty():
        seen.append(lines.get())
    text = "".join(seen)
    assert code == 0, text
    assert "touchpoint demo: stopped" in text
    summary = text[text.index("── touchpoint demo") :]
    assert "customers" in summary
    assert "actions" in summary
    assert "dead" in summary
    deadline = time.monotonic() + 5
    while (_alive(worker) or _alive(broker) or _listening(broker_port)) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.2)
    assert not _alive(worker)
    assert not _alive(broker)
    assert not _listening(broker_port)
    assert not _listening(web_port)
