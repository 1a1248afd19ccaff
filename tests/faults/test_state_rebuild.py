"""A worker's local state directory is deleted between runs: the changelog brings it back.

A worker processes the first half of a quarter of the baseline's customers and stops cleanly.
Its whole data directory (RocksDB tables included) is deleted, and it starts again on the empty
directory: what its customer API answers for a sample of people must be what it answered
before, and after the second half is processed every person's state, the action ids and the
transitions equal the undisturbed baseline's.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.brokers.apache_kafka import ApacheKafka
from tests.support import faults
from tests.support.worker import WorkerProcess

pytestmark = [pytest.mark.broker, pytest.mark.timeout(faults.timeout_s(0.25))]

TOKEN = "fault-test-token"
SAMPLE = 300
_BULK = re.compile(r"bulk restore: ([0-9,]+) records in")


def _answers(worker: WorkerProcess, people: list[str]) -> dict[str, Any]:
    """What the worker's customer API says about each of `people` (status and body)."""
    out: dict[str, Any] = {}
    for key in people:
        request = urllib.request.Request(
            worker.url(f"/customers/{urllib.request.quote(key, safe='')}"),
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as r:
                out[key] = (r.status, orjson.loads(r.read()))
        except urllib.error.HTTPError as e:
            out[key] = (e.code, e.read().decode(errors="replace"))
    return out


def test_state_deleted_between_runs_is_rebuilt_from_the_changelog(
    kafka: ApacheKafka, traffic: faults.Traffic, baseline: faults.Outputs, tmp_path: Path
) -> None:
    mine = traffic.subset(4, 2)
    first, second = mine.split(len(mine.messages) // 2)
    worker = WorkerProcess(kafka.bootstrap, tmp_path / "w", TOUCHPOINT_API_TOKEN=TOKEN)
    data = Path(worker.env["TOUCHPOINT_DATA_DIR"])
    try:
        faults.started(worker)
        coords = asyncio.run(faults.produce_recorded(kafka.bootstrap, first.messages))
        faults.wait_settled(kafka.bootstrap, timeout_s=600)
        people = sorted(asyncio.run(faults.read_outputs(kafka.bootstrap)).states)
        sample = people[:: max(1, len(people) // SAMPLE)]
        before = _answers(worker, sample)
        worker.stop()
        size_mb = sum(f.stat().st_size for f in data.rglob("*") if f.is_file()) / 1e6
        shutil.rmtree(data)
        logged = worker.log_path.stat().st_size
        rebuild_s = faults.started(worker)
        second_log = worker.log_path.read_bytes()[logged:].decode(errors="replace")
        restored = [int(n.replace(",", "")) for n in _BULK.findall(second_log)]
        after = _answers(worker, sample)
        began = time.monotonic()
        coords += asyncio.run(faults.produce_recorded(kafka.bootstrap, second.messages))
        faults.wait_settled(kafka.bootstrap, timeout_s=600)
        second_s = time.monotonic() - began
        got = asyncio.run(faults.read_outputs(kafka.bootstrap))
    finally:
        worker.stop()

    want = baseline.only(mine.people.values())
    faults.report(
        f"state rebuild: {len(mine.messages)} messages; after the first "
        f"{len(first.messages)} the data directory ({size_mb:.1f} MB) was deleted; the "
        f"worker was ready again in {rebuild_s:.1f} s with {len(people)} people rebuilt from "
        f"the changelog ({sum(restored):,} records read in bulk); {len(sample)} customer API "
        f"answers compared; the second half took {second_s:.0f} s"
    )
    # The tables came back through the bulk restore (stream/extensions/restore.py), not Faust's own.
    assert sum(restored) >= len(people), restored
    assert [key for key in sample if before[key][0] != 200] == []
    assert after == before
    assert faults.differences(want, got) == []
    assert faults.accounted(mine, coords, got) == []
