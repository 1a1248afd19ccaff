"""The status page at `/`, rendered by headless Chromium, and the per-stage gauge across workers."""

from __future__ import annotations

import asyncio
import re
import subprocess
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from aiokafka.partitioner import murmur2

from processor import topics as t
from tests.support.kafka import produce
from tests.support.system_tools import ARTIFACTS, require_tool
from tests.support.worker import WorkerProcess, eventually, metric_values

pytestmark = pytest.mark.broker

#: The event that puts a new person in each stage, and how many people get there.
FIRST_EVENT = {
    "awareness": ("page_view", {"url": "/"}, 2),
    "consideration": ("product_view", {"product_id": "P-1", "category": "mugs", "price": 9.5}, 3),
    "purchase": ("order_placed", {"order_id": "O", "value": 20.0, "currency": "EUR"}, 4),
}
WANT = {"awareness": 2, "consideration": 3, "purchase": 4, "retention": 0, "advocacy": 0,
        "lapsed": 0}  # fmt: skip
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars",
]  # fmt: skip


def _messages(prefix: str) -> list[tuple[str, bytes | None, bytes | None]]:
    at = (datetime.now(UTC) - timedelta(minutes=1)).isoformat().replace("+00:00", "Z")
    out: list[tuple[str, bytes | None, bytes | None]] = []
    for stage, (typ, props, n) in FIRST_EVENT.items():
        for i in range(n):
            cid = f"{prefix}-{stage}-{i}"
            value = {"event_id": f"{cid}-1", "type": typ, "occurred_at": at,
                     "identity": {"customer_id": cid}, "properties": props}  # fmt: skip
            out.append((t.WEB, cid.encode(), orjson.dumps(value)))
    return out


BAD = [(t.WEB, b"x", b"not json"), (t.STORE, b"y", b"{}")]


def _total(text: str, name: str) -> float:
    return sum(metric_values(text, name).values())


def _customers(worker: WorkerProcess) -> dict[str, float]:
    got = metric_values(worker.metrics(), "touchpoint_customers")
    return {dict(k)["stage"]: v for k, v in got.items()}


def _get(worker: WorkerProcess, path: str) -> tuple[bytes, dict[str, str]]:
    with urllib.request.urlopen(worker.url(path), timeout=5) as r:
        return r.read(), dict(r.headers)


def _chromium(binary: str, profile: Path, *args: str) -> str:
    done = subprocess.run(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_the_status_page_shows_the_funnel_rates_and_dead_letters(
    topics_ready: str, tmp_path: Path
) -> None:
    chromium = require_tool("chromium")
    messages = _messages("C") + BAD
    with WorkerProcess(topics_ready, tmp_path / "worker") as worker:
        asyncio.run(produce(topics_ready, messages))

        def done() -> str | None:
            text = worker.metrics()
            n = _total(text, "touchpoint_events_processed_total")
            n += _total(text, "touchpoint_deadletters_total")
            return None if n == len(messages) else f"{n} of {len(messages)} done"

        eventually("not processed", done, timeout_s=60)
        status = orjson.loads(_get(worker, "/status.json")[0])
        assert {f["stage"]: f["customers"] for f in status["funnel"]} == WANT
        assert status["totals"]["deadletters"] == len(BAD)
        assert {d["kind"]: d["count"] for d in status["deadletters_by_kind"]} == {
            "decode": 1,
            "validation": 1,
        }
        assert status["ready"] is True
        assert status["partitions"] == list(range(8))
        assert {k: v for k, v in _customers(worker).items() if k != "erased"} == WANT

        page, headers = _get(worker, "/")
        assert headers["Content-Type"].startswith("text/html")
        assert "default-src 'none'" in headers["Content-Security-Policy"]
        # No external assets: nothing is loaded from anywhere but this worker.
        assert not re.search(rb"""(src|href)\s*=|@import|url\(|https?://""", page)

        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / "status-page.png"
        shot.unlink(missing_ok=True)
        # Virtual time lets the page's script fetch /status.json and render before the dump.
        dom = _chromium(chromium, tmp_path / "profile-dom", "--virtual-time-budget=5000",
                        "--dump-dom", worker.url("/"))  # fmt: skip
        _chromium(chromium, tmp_path / "profile-shot", "--virtual-time-budget=5000",
                  "--window-size=1280,900", f"--screenshot={shot}", worker.url("/"))  # fmt: skip

    rows = dict(re.findall(r'data-stage="(\w+)" data-count="(\d+)"', dom))
    assert {stage: int(n) for stage, n in rows.items()} == WANT
    assert re.search(r'id="deadletters-total">2<', dom)
    assert re.search(r'id="ready" class="pill ok">ready<', dom)
    assert shot.stat().st_size > 10_000


def _partition(key: str, partitions: int = 8) -> int:
    # Kafka's default partitioner, which the worker's re-keying producer uses.
    return int(murmur2(key.encode()) & 0x7FFFFFFF) % partitions


def _people(prefixes: tuple[str, ...], partitions: set[int]) -> dict[str, float]:
    """People per stage that `_messages(prefix)` put on `partitions`, every stage listed."""
    got = dict.fromkeys(WANT, 0.0)
    for prefix in prefixes:
        for stage, (_, _, n) in FIRST_EVENT.items():
            got[stage] += sum(_partition(f"{prefix}-{stage}-{i}") in partitions for i in range(n))
    return got


def test_the_stage_gauge_sums_over_workers_and_moves_with_partitions(
    topics_ready: str, tmp_path: Path
) -> None:
    """Each worker counts exactly the people on its partitions: before a second worker joins,
    after it took half of the partitions (and their people, recovered from the changelog),
    after more traffic, and after it left again."""
    first = WorkerProcess(topics_ready, tmp_path / "w1", TOUCHPOINT_STORE="memory")
    second = WorkerProcess(topics_ready, tmp_path / "w2", TOUCHPOINT_STORE="memory")
    everything = set(range(8))
    first.start()
    try:
        asyncio.run(produce(topics_ready, _messages("A")))

        def alone() -> str | None:
            got = {k: v for k, v in _customers(first).items() if k != "erased"}
            return None if got == WANT else f"{got}"

        eventually("the only worker did not count everybody", alone, timeout_s=60)
        second.start()
        both = (first, second)

        def split() -> str | None:
            parts = [orjson.loads(_get(w, "/status.json")[0])["partitions"] for w in both]
            return None if all(parts) and not set(parts[0]) & set(parts[1]) else f"{parts}"

        eventually("the partitions were not shared", split, timeout_s=90)
        owned = [set(orjson.loads(_get(w, "/status.json")[0])["partitions"]) for w in both]
        assert owned[0] | owned[1] == everything

        def exact(prefixes: tuple[str, ...]) -> Callable[[], str | None]:
            def check() -> str | None:
                got = [{k: v for k, v in _customers(w).items() if k != "erased"} for w in both]
                want = [_people(prefixes, mine) for mine in owned]
                return None if got == want else f"got {got}, want {want}"

            return check

        # The first worker stopped counting what moved; the second recounted it from its table.
        eventually("the gauges after the join", exact(("A",)), timeout_s=60)
        asyncio.run(produce(topics_ready, _messages("D")))
        eventually("the gauges after more traffic", exact(("A", "D")), timeout_s=60)
        second.stop()  # its partitions move back to the first worker, which recounts them

        def taken_over() -> str | None:
            got = {k: v for k, v in _customers(first).items() if k != "erased"}
            want = _people(("A", "D"), everything)
            return None if got == want else f"{got}"

        eventually("the survivor did not count the moved partitions", taken_over, 90)
    finally:
        first.stop()
        second.stop()


def test_consumer_lag_is_reported_per_topic_and_partition(
    topics_ready: str, tmp_path: Path
) -> None:
    """A backlog on one partition shows as lag on exactly that topic and partition, on /metrics
    and /status.json, and drains to zero; every consumed partition has its own series."""
    behind = 3
    key = next(k for i in range(1000) if _partition(k := f"K-{i}") == behind)
    # Not JSON: each is dead-lettered at once; the worker commits after every message
    # (TOUCHPOINT_BATCH_MAX=1), so the backlog drains fast but not between two samples.
    backlog = [(t.WEB, key.encode(), b"not json") for _ in range(5_000)]
    asyncio.run(produce(topics_ready, backlog))
    consumed = {(topic, p) for topic in (*t.INBOUND, t.CONTROL, t.CUSTOMER_EVENTS,
                                         t.IDENTITY_ROUTES) for p in range(8)}  # fmt: skip
    consumed.add((t.IDENTITY_LINKS, 0))
    seen_behind: list[float] = []
    with WorkerProcess(topics_ready, tmp_path / "worker", TOUCHPOINT_BATCH_MAX="1") as worker:

        def lag() -> dict[tuple[str, int], float]:
            got = metric_values(worker.metrics(), "touchpoint_consumer_lag_messages")
            return {(dict(k)["topic"], int(dict(k)["partition"])): v for k, v in got.items()}

        def drained() -> str | None:
            now = lag()
            others = {tp: v for tp, v in now.items() if tp[0] in t.INBOUND and tp[1] != behind}
            assert not any(others.values()), others  # nothing was ever published there
            if now.get((t.WEB, behind)):
                seen_behind.append(now[(t.WEB, behind)])
            if set(now) != consumed or any(now.values()):
                return f"{len(now)} series, {sum(now.values())} behind"
            # Lag counts from the committed offsets; a worker may commit ahead of its last
            # dead letter's acknowledgement, so the count is what says the backlog is done.
            done = _total(worker.metrics(), "touchpoint_deadletters_total")
            if done != len(backlog):
                return f"lag 0 but {done:g} of {len(backlog)} dead-lettered"
            return None

        eventually("the backlog did not drain", drained, timeout_s=120)
        status = orjson.loads(_get(worker, "/status.json")[0])
        assert {(r["topic"], r["partition"]) for r in status["lag"]} == consumed
        assert status["lag_total"] == 0
        text = worker.metrics()
        assert _total(text, "touchpoint_deadletters_total") == len(backlog)
    # The backlog was seen while it drained, at most as large as it was.
    assert seen_behind, "no sample saw the backlog"
    assert max(seen_behind) <= len(backlog)
