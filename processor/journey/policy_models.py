"""The `policies` section of a journey file: consent, caps, quiet hours, staleness, bounds."""

from __future__ import annotations

from datetime import time
from typing import Annotated
from zoneinfo import available_timezones

from pydantic import BeforeValidator, Field

from processor.journey.fields import ActionChannel, Duration, Strict


class ConsentPolicy(Strict):
    """Marketing messages on these channels need an explicit opt-in."""

    channels: tuple[ActionChannel, ...]
    existing_customers_soft_opt_in: bool = False


class RollingCap(Strict):
    """At most `max` capped messages in any window of `within`."""

    max: int = Field(ge=0)
    within: Duration


class CapPolicy(Strict):
    """Frequency caps over marketing messages on `channels`."""

    channels: tuple[ActionChannel, ...]
    rolling: RollingCap
    per_local_day: int = Field(ge=0)


class QuietHours(Strict):
    """Local hours in which marketing messages are held back until `end`."""

    start: time
    end: time
    channels: tuple[ActionChannel, ...]


def _known_zone(value: str) -> str:
    if value not in available_timezones():
        raise ValueError(f"unknown IANA time zone {value!r}")
    return value


class Policies(Strict):
    """Rules that apply to every action and transition."""

    timezone: Annotated[str, BeforeValidator(_known_zone)]
    shop_currency: str = Field(min_length=3, max_length=3)
    consent: ConsentPolicy
    transactional_templates: tuple[str, ...] = ()
    frequency_caps: CapPolicy | None = None
    quiet_hours: QuietHours | None = None
    stale_after: Duration
    conversion_lookback: Duration
    dedupe_window_events: int = Field(ge=1, le=100_000)
    max_touches: int = Field(default=64, ge=1)
    max_recent_events: int = Field(default=64, ge=1)
    max_keys_per_step: int = Field(default=64, ge=1)
    max_pending_per_step: int = Field(default=16, ge=1)
    #: When two profiles turn out to be one person, the merged person is in whichever of
    #: their stages comes later in this list (stages not listed rank first).
    merge_order: tuple[str, ...] = ()
