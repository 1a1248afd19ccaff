"""Faust's consumer scheduler, handing out a fetch's records oldest first (agents/ordering.py)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from faust.transport.utils import DefaultSchedulingStrategy
from faust.types import TP

from processor.stream.agents.ordering import oldest_first


class OldestFirst(DefaultSchedulingStrategy):
    """Faust's `ConsumerScheduler`: a fetch's records by timestamp, partitions interleaved."""

    def iterate(self, records: Mapping[TP, Sequence[Any]]) -> Iterator[tuple[TP, Any]]:
        """Each partition's records in their order, merged oldest first (`oldest_first`)."""
        return oldest_first(records)
