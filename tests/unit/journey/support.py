"""Helpers of the journey engine's unit tests: the shipped journey (loaded once) and events."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from processor.events import CHANNELS_OF, Channel, EventType, Touchpoint
from processor.journey.definition import load_journey
from processor.journey.engine import EventInput
from processor.settings import DEFAULT_JOURNEY_FILE

LIFECYCLE = load_journey(DEFAULT_JOURNEY_FILE)


def touchpoint(
    eid: str, typ: str, at: datetime, customer: str = "C-1", tz: str | None = None, **props: Any
) -> Touchpoint:
    """A validated touchpoint of `customer`."""
    return Touchpoint.model_validate(
        {
            "event_id": eid,
            "type": typ,
            "occurred_at": at.isoformat(),
            "identity": {"customer_id": customer},
            "context": {"timezone": tz} if tz else {},
            "properties": props,
        }
    )


def channel_of(typ: str) -> Channel:
    """The first channel that may carry `typ`."""
    return min(CHANNELS_OF[EventType(typ)], key=list(Channel).index)


def touch(
    eid: str, typ: str, at: datetime, customer: str = "C-1", tz: str | None = None, **props: Any
) -> EventInput:
    """An EventInput for `customer`, on the first channel that may carry `typ`."""
    event = touchpoint(eid, typ, at, customer, tz, **props)
    return EventInput.of(event, channel_of(typ), customer)
