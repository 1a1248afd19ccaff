"""`make bench` at a very small size, so that the benchmark cannot rot unnoticed: on the embedded
broker in the default suite, with `--broker kafka` in the Kafka suite."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from processor.bench import quix
from tests.conftest import BROKER, require_apache_kafka

# Every contestant, the SIGKILL round and, on a fresh clone, making the Quix Streams environment
# (about a minute): longer than the suite's default, more so while the suite runs in parallel.
pytestmark = [pytest.mark.broker, pytest.mark.timeout(900)]


def test_the_benchmark_runs_every_contestant_and_prints_the_table(tmp_path: Path) -> None:
    if BROKER == "kafka":
        require_apache_kafka()
    quix.environment()  # made once per checkout; another test process may be making it now
    out = tmp_path / "results.json"
    result = subprocess.run(
        [sys.executable, "-m", "processor.bench", "--size", "smoke", "--dir", str(tmp_path),
         "--output", str(out), "--naive-seconds", "3", "--latency-seconds", "3",
         "--broker", BROKER],
        capture_output=True, timeout=800, check=False,
    )  # fmt: skip
    printed = result.stdout.decode()
    assert result.returncode == 0, printed[-3000:] + result.stderr.decode()[-3000:]
    r = orjson.loads(out.read_bytes())
    assert r["broker"] == BROKER
    broker = {"embedded": "one embedded broker", "kafka": "one Apache Kafka broker"}[BROKER]
    assert f"invalid), {broker}, " in printed
    stream = r["stream"]
    assert stream["messages"] == 2000
    assert stream["duplicates"] > 0
    assert sum(stream["invalid"].values()) > 0
    for name in ("raw", "validating", "naive", "empty", "quix", "processor"):
        assert r[name]["rate"] > 0, name
        assert r[name]["cpu_s_per_1000"] > 0, name
        assert r[name]["peak_rss_bytes"] > 10 * 2**20, name
    # The processor drained the whole small stream: every message processed or dead-lettered.
    assert r["processor"]["complete"]
    counters = r["processor"]["runs"][0]["extra"]["counters"]
    assert counters["touchpoint_deadletters_total"] == sum(stream["invalid"].values())
    assert counters["touchpoint_actions_total"] > 0
    # The same stream on two workers: as complete, with the same dead letters.
    scaled = r["scaled"]
    assert scaled["workers"] == 2
    assert scaled["complete"]
    assert scaled["rate"] > 0
    scaled_counters = scaled["runs"][0]["extra"]["counters"]
    assert scaled_counters["touchpoint_deadletters_total"] == sum(stream["invalid"].values())
    assert r["latency"]["actions_measured"] > 0
    assert 0 < r["latency"]["p50_ms"] <= r["latency"]["p99_ms"]
    # The journey step alone, over every valid event of the small stream (repeats included,
    # erase commands not).
    assert stream["valid"] // 2 < r["step"]["events"] <= stream["valid"] + stream["duplicates"]
    assert 0 < r["step"]["median_us"] <= r["step"]["p99_us"]
    assert r["step"]["cpu_mean_us"] > 0
    assert r["state"]["customers"] == 2000
    assert r["state"]["rebuild_s"] > 0
    assert r["state"]["new_member_rebuild_s"] > 0
    assert r["state"]["ready_after_kill_s"] > 0
    for line in (
        "raw aiokafka pipe", "raw pipe, validating", "validation alone", "naive Faust agent",
        "empty Faust agent", "processor, 2 workers",
        "Quix Streams app", "processor / raw", "processor / naive", "processor / Quix",
        "the ceiling of an agent", "latency at",
        "customers in state", "on a new data directory", "after a SIGKILL", "journey step alone",
        "processor CPU",
    ):  # fmt: skip
        assert line in printed, line
