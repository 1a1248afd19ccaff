"""The journey `step` alone: CPU time per event on the benchmark's stream, without Kafka.

Each valid event of the stream is decoded (as ingest does), given to its person (identities
resolved by the link agent's graph, held in a dict; profiles that a link joins later are not
merged here), all before the clock starts; then each is applied with `step` to its person's
state, the monotonic clock read around each call (a median and a p99) and the thread's CPU
clock around them all (a mean). Decoding, routing, the state's encoding for the table and
sending are left out. The step's clock is the event's time plus a second, as for live traffic.
The garbage collector runs as in a worker (processor/collector.py): what exists before the
first step (the decoded events) is exempt from its scans, as a worker's start-up heap is.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from processor import collector
from processor.bench import stream
from processor.decode import Rejection, decode_touchpoint
from processor.identity import graph
from processor.journey.definition import Journey
from processor.journey.engine import EventInput, step
from processor.journey.state import CustomerState
from processor.stream.agents.deadletters import CHANNEL_OF_TOPIC

_LATE = timedelta(seconds=1)
#: Later than any event of a benchmark stream (which starts at its file clock, `EPOCH`).
_AFTER_ALL = stream.EPOCH + timedelta(days=3650)


@dataclass(frozen=True)
class StepTimes:
    """Time of `step` per event, in microseconds."""

    events: int
    people: int
    #: Per call, from the monotonic clock (the machine otherwise idle: CPU time, in effect).
    median_us: float
    p99_us: float
    #: The thread's CPU time over all the calls, per call (the clock readings included).
    cpu_mean_us: float

    def to_json(self) -> dict[str, Any]:
        """The results file's form."""
        return asdict(self)


def _person(store: dict[str, graph.NodeRecord], nodes: list[str]) -> str:
    if len(nodes) > 1:
        change = graph.link(store.get, nodes)
        graph.apply(store, change)
        return change.canonical
    node = nodes[0]
    record = None if graph.is_anchor(node) else store.get(node)
    return record.canonical if record is not None else graph.key_of(node)


def inputs(path: Path, *, max_event_bytes: int, limit: int | None = None) -> list[EventInput]:
    """The stream's valid events (of its first `limit` messages), each for its person."""
    store: dict[str, graph.NodeRecord] = {}
    out = []
    for topic, _, value in stream.read(path, limit):
        channel = CHANNEL_OF_TOPIC.get(topic)
        if channel is None:
            continue
        event = decode_touchpoint(value, channel, _AFTER_ALL, max_bytes=max_event_bytes)
        if not isinstance(event, Rejection):
            person = _person(store, graph.nodes_of(event.identity))
            out.append(EventInput.of(event, channel, person))
    if not out:
        raise ValueError(f"{path}: no valid event to time")
    return out


def measure(events: list[EventInput], journey: Journey) -> StepTimes:
    """Apply `events` in order, each to its person's state, timing each `step` call."""
    tick = time.perf_counter_ns
    states: dict[str, CustomerState | None] = {}
    spent: list[int] = []
    with collector.working():
        cpu = time.thread_time()
        for inp in events:
            state = states.get(inp.customer_id)
            now = inp.occurred_at + _LATE
            began = tick()
            out = step(state, inp, now, journey)
            spent.append(tick() - began)
            states[inp.customer_id] = out.state
        cpu = time.thread_time() - cpu
    micros = sorted(ns / 1000 for ns in spent)
    return StepTimes(
        events=len(micros),
        people=len(states),
        median_us=statistics.median(micros),
        p99_us=micros[min(len(micros) - 1, int(len(micros) * 0.99))],
        cpu_mean_us=cpu * 1e6 / len(micros),
    )
