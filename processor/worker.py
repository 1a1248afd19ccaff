"""Start a worker: check the topics, build the app, and run it until a signal stops it.

The worker's composition root: it wires the streaming layer (processor/stream/, which knows
nothing of the web server) and the web server's routes (processor/web/, which read the runtime
the streaming layer builds)."""

from __future__ import annotations

import asyncio
import sys

import faust
from aiokafka.admin import AIOKafkaAdminClient

from processor import collector, logs
from processor import topics as t
from processor.journey.definition import load_journey
from processor.kafka import admin
from processor.kafka.clients import connected, connection_kwargs
from processor.metrics import Metrics
from processor.settings import Settings
from processor.stream.agents import wiring
from processor.stream.agents.ingest import Ingest
from processor.stream.app import create_app
from processor.stream.extensions.membership import Membership
from processor.stream.timers import clock
from processor.web import views


async def preflight(settings: Settings) -> list[str]:
    """Reasons not to start: required topics missing or with the wrong partition count."""
    specs = t.load(settings.topics_dir)
    client = AIOKafkaAdminClient(**connection_kwargs(settings), request_timeout_ms=15_000)
    async with connected(client, settings, "the worker checking its topics"):
        return await admin.missing_or_wrong(client, specs, t.ALL)


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
    logs.announce(settings.log_format, f"worker on http://{settings.web_host}:{settings.web_port}/")
    # asyncio.run closed its loop; Faust and mode expect a current one.
    asyncio.set_event_loop(asyncio.new_event_loop())
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    metrics = Metrics.create(stages=tuple(journey.stages))
    rt = create_app(settings, journey, metrics, membership=Membership(settings.data_dir))
    wiring.install(rt)
    clock.install(rt)
    views.install(rt)
    rt.ingest = Ingest(rt)
    worker = faust.Worker(
        rt.app,
        rt.ingest,
        loglevel=settings.log_level,
        logging_config=logs.logging_config(settings.log_format),
        quiet=True,
    )
    collector.configure()
    code = 0
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        code = int(exc.code or 0)
    return code
