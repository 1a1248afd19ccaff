"""Start a worker: check the topics, build the app, and run it until a signal stops it."""

from __future__ import annotations

import asyncio
import gc
import shutil
import sys
from pathlib import Path

import faust
from aiokafka.admin import AIOKafkaAdminClient

from processor import topics as t
from processor.journey.definition import load_journey
from processor.kafka import admin
from processor.kafka.clients import connection_kwargs
from processor.metrics import Metrics
from processor.settings import Settings
from processor.stream import agents, clock, writes
from processor.stream.app import create_app
from processor.stream.ingest import Ingest
from processor.stream.membership import Membership
from processor.web import views


async def preflight(settings: Settings) -> list[str]:
    """Reasons not to start: required topics missing or with the wrong partition count."""
    specs = t.load(settings.topics_dir)
    client = AIOKafkaAdminClient(**connection_kwargs(settings), request_timeout_ms=15_000)
    await client.start()
    try:
        return await admin.missing_or_wrong(client, specs, t.ALL)
    finally:
        await client.close()


#: Present in the data directory while a worker runs; removed only when it stopped cleanly.
RUNNING_MARK = "worker.running"


def discard_state_after_crash(data_dir: Path) -> bool:
    """Delete the local table state if the last worker on `data_dir` did not stop cleanly.

    The RocksDB store writes each table change to local disk at once, before Kafka has
    acknowledged the changelog record and the actions and transitions of the same event. After
    a crash (SIGKILL, OOM, power) the local state may therefore be ahead of Kafka: the replayed
    events would be found in `seen` and dropped as duplicates, and the outputs lost with the
    process would never be sent. Without local state the tables are rebuilt from the changelogs,
    which hold only what Kafka acknowledged, so the replay sends those outputs again.
    Returns True when state was discarded.
    """
    mark = data_dir / RUNNING_MARK
    crashed = mark.exists()
    tables = data_dir / "v1" / "tables"  # faust's tabledir under its datadir
    if crashed and tables.exists():
        shutil.rmtree(tables)
    mark.write_text("a worker runs on this directory; gone after a clean stop\n", "utf-8")
    return crashed


def run_worker(settings: Settings) -> int:
    """Run one worker in the foreground; returns the exit code."""
    journey = load_journey(settings.journey_file)
    problems = asyncio.run(preflight(settings))
    if problems:
        print("touchpoint: refusing to start, the topics are not as declared:", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        print("Create them with `touchpoint topics apply`.", file=sys.stderr)
        return 2
    # asyncio.run closed its loop; Faust and mode expect a current one.
    asyncio.set_event_loop(asyncio.new_event_loop())
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if discard_state_after_crash(settings.data_dir):
        print(
            "touchpoint: the last worker on this data directory did not stop cleanly; "
            "rebuilding its tables from the changelogs",
            file=sys.stderr,
            flush=True,
        )
    metrics = Metrics.create(stages=tuple(journey.stages))
    rt = create_app(settings, journey, metrics, membership=Membership(settings.data_dir))
    agents.install(rt)
    clock.install(rt)
    views.install(rt)
    rt.ingest = Ingest(rt)
    worker = faust.Worker(rt.app, rt.ingest, loglevel=settings.log_level, quiet=True)
    # What exists now lives as long as the worker (Faust, the models' validators, the journey):
    # exempt from the garbage collector's full scans, which paused the worker up to 71 ms each
    # at the benchmark's latency rate (12 ms with this).
    gc.collect()
    gc.freeze()
    code = 0
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        code = int(exc.code or 0)
    if code == 0 and writes.all_flushed():
        # A unit still in hand at the stop left table changes in the local store that its
        # changelog never got: the mark stays, and the next start rebuilds.
        (settings.data_dir / RUNNING_MARK).unlink(missing_ok=True)
    return code
