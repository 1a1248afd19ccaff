"""How often Python's cyclic garbage collector runs in a worker (and in the step's benchmark).

A worker makes many short-lived objects per event (the decoded event, the person's state for
the step, the outputs), nearly all freed by reference counting as soon as they are done with,
and keeps a large heap that lives as long as it does (Faust, the validators, the journey; the
tables' caches and the timer index, which grow with the people it holds). Python's defaults
scan the young objects every 700 allocations not yet freed and the older generations every
10 young scans, and each of those scans reaches into the heap: in the step's benchmark they
took about a quarter of its CPU time (21 µs of 80 per event). Scanned every 50,000 instead, the
young objects are nearly all gone by then and the scans cost 3 to 5 µs per event; cycles (an
exception's traceback, a finished task) still go within that many allocations.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

#: Allocations not yet freed between scans of the young generation (Python's default: 700).
YOUNG_SCAN_AFTER = 50_000


def configure() -> None:
    """For a process about to work: what exists now lives as long as it does (exempt from
    the collector's scans, which paused the worker up to 71 ms each at the benchmark's latency
    rate, 12 ms without it), and the young generation is scanned every YOUNG_SCAN_AFTER
    allocations."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_SCAN_AFTER, older, oldest)


@contextmanager
def working() -> Iterator[None]:
    """`configure` for a while, in a process that goes on as before afterwards (the step's
    benchmark measures the step as a worker runs it)."""
    before = gc.get_threshold()
    configure()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
