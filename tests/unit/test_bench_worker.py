"""The benchmark's worker handle: a run that needs its workers fails at once, with the log's
end, when one of them exited."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from processor.bench.worker import Worker, check_alive


def test_a_run_fails_with_the_log_of_a_worker_that_exited(tmp_path: Path) -> None:
    worker = Worker("127.0.0.1:9", tmp_path, web_port=1234)
    worker.log_path.write_text("starting\nunits: the broker skipped a record; stopping\n")
    worker.proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(75)"])
    worker.proc.wait()
    with pytest.raises(RuntimeError) as raised:
        check_alive([worker])
    assert str(raised.value).startswith("worker exited during the run:\n")
    assert "the broker skipped a record" in str(raised.value)


def test_a_run_goes_on_while_its_workers_live(tmp_path: Path) -> None:
    worker = Worker("127.0.0.1:9", tmp_path, web_port=1234)
    worker.proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        check_alive([worker])
    finally:
        worker.proc.kill()
        worker.proc.wait()
