"""The traffic generator: personas' touchpoints on a compressed clock, as Kafka messages. Pure.

Simulated time runs `compression` times faster than the wall clock, and is mapped onto it: a
touchpoint at simulated second `s` of the run is due `s / compression` wall seconds after the
start, and its `occurred_at` is exactly that moment (start + send_at). So an event is never
stamped later than it is sent, and a worker whose journey is compressed by the same factor (see
`compress.py`) sees the same gaps between touchpoints, and between them and its timers, as the
real journey would over days.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NamedTuple

import orjson

from processor.simulate import invalid
from processor.simulate.personas import DEFAULT_MIX, PERSONAS, Beat, Who, who

_TOPIC = {"web": "touchpoints.web", "email": "touchpoints.email", "store": "touchpoints.store"}
_KEY_ORDER = ("customer_id", "email", "loyalty_id", "anonymous_id")


class SimMessage(NamedTuple):
    """One message to publish: topic, key, value, and when (seconds after the run's start)."""

    topic: str
    key: bytes | None
    value: bytes
    send_at: float


@dataclass(frozen=True)
class SimConfig:
    """What to simulate. The same config (seed and start included) gives the same bytes."""

    start: datetime
    customers: int = 100
    seed: int = 1
    #: Simulated seconds per wall second: 1440 plays a day in a minute.
    compression: float = 1440.0
    #: At most this many messages per wall second (None: as the compressed clock dictates).
    rate: float | None = None
    #: Stop after this many messages, or when the next one is due later than `duration_s`.
    events: int | None = None
    duration_s: float | None = None
    #: First touchpoints are spread uniformly over this much simulated time.
    spread_s: float = 86400.0
    invalid_fraction: float = 0.0
    duplicate_fraction: float = 0.0
    invalid_kinds: tuple[str, ...] = invalid.KINDS
    #: Size above which the worker dead-letters as `too_large` (its TOUCHPOINT_MAX_EVENT_BYTES).
    max_event_bytes: int = 1_048_576
    timezone: str = "Europe/Berlin"
    #: persona name -> weight; customers are dealt round-robin in this proportion.
    mix: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_MIX))

    def __post_init__(self) -> None:
        if self.start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        if self.compression <= 0:
            raise ValueError("time compression must be positive")
        if not 0 <= self.invalid_fraction < 1 or not 0 <= self.duplicate_fraction < 1:
            raise ValueError("fractions must be in [0, 1)")
        unknown = set(self.mix) - set(PERSONAS)
        if unknown or not any(w > 0 for w in self.mix.values()):
            raise ValueError(f"unknown personas {sorted(unknown)}; known: {sorted(PERSONAS)}")


@dataclass(frozen=True)
class Customer:
    """One simulated person: who they are, which persona, and when their story starts."""

    who: Who
    persona: str
    arrives_s: float


@dataclass
class Stats:
    """Counts of what the generator produced so far."""

    valid: int = 0
    duplicates: int = 0
    invalid: Counter[str] = field(default_factory=Counter)
    by_type: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        """Every message, valid, duplicate and invalid."""
        return self.valid + self.duplicates + sum(self.invalid.values())


def cast(config: SimConfig) -> list[Customer]:
    """The run's customers: personas dealt round-robin by weight, arrivals drawn from the seed."""
    deck = [name for name, weight in sorted(config.mix.items()) for _ in range(weight)]
    rng = random.Random(f"{config.seed}-arrivals")  # noqa: S311 (a simulation, not secrets)
    return [
        Customer(who(config.seed, i), deck[i % len(deck)], rng.uniform(0, config.spread_s))
        for i in range(config.customers)
    ]


def _value(beat: Beat, eid: str, at: datetime, tz: str) -> bytes:
    context = {"timezone": tz, "locale": "de-DE", **beat.context}
    if beat.channel == "store" and "store_id" in beat.properties:
        context["store_id"] = str(beat.properties["store_id"])
    return orjson.dumps(
        {
            "event_id": eid,
            "type": beat.type,
            "channel": beat.channel,
            "occurred_at": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "identity": beat.identity,
            "context": context,
            "properties": beat.properties,
        }
    )


def _key(identity: dict[str, str]) -> bytes | None:
    # As `touchpoint publish` keys a line: the first identifier in this order.
    return next((identity[k].encode() for k in _KEY_ORDER if identity.get(k)), None)


def timeline(config: SimConfig, people: Sequence[Customer]) -> list[tuple[float, str, Beat]]:
    """Every persona's beats on the simulated clock, in order: (sim seconds, event id, beat)."""
    beats: list[tuple[float, int, int, str, Beat]] = []
    for c in people:
        rng = random.Random(f"{config.seed}-{c.who.index}")  # noqa: S311
        for n, beat in enumerate(PERSONAS[c.persona].script(c.who, rng)):
            eid = f"{c.who.customer_id}-{n:02d}"
            beats.append((c.arrives_s + beat.at_s, c.who.index, n, eid, beat))
    beats.sort(key=lambda b: (b[0], b[1], b[2]))
    return [(at, eid, beat) for at, _, _, eid, beat in beats]


def generate(config: SimConfig, stats: Stats | None = None) -> Iterator[SimMessage]:
    """The run's messages in sending order; `send_at` never decreases."""
    stats = stats if stats is not None else Stats()
    rng = random.Random(f"{config.seed}-faults")  # noqa: S311
    gap_s = 1.0 / config.rate if config.rate else 0.0
    clock = 0.0
    sent = 0

    def tick(due_s: float) -> float | None:
        nonlocal clock, sent
        # The rate limit may push a message later than the compressed clock asks; never earlier.
        clock = max(due_s, clock + gap_s if sent else due_s)
        if config.events is not None and sent >= config.events:
            return None
        if config.duration_s is not None and clock > config.duration_s:
            return None
        sent += 1
        return clock

    for sim_s, eid, beat in timeline(config, cast(config)):
        # Geometric: on average f / (1 - f) invalid messages per valid one, so that a share
        # `invalid_fraction` of valid plus invalid messages is invalid.
        while config.invalid_fraction and rng.random() < config.invalid_fraction:
            at = tick(sim_s / config.compression)
            if at is None:
                return
            kind = config.invalid_kinds[sum(stats.invalid.values()) % len(config.invalid_kinds)]
            n = sum(stats.invalid.values())
            topic, key, value = invalid.make(
                kind, n, config.start + timedelta(seconds=at), config.max_event_bytes
            )
            stats.invalid[kind] += 1
            yield SimMessage(topic, key, value, at)
        at = tick(sim_s / config.compression)
        if at is None:
            return
        value = _value(beat, eid, config.start + timedelta(seconds=at), config.timezone)
        msg = SimMessage(_TOPIC[beat.channel], _key(beat.identity), value, at)
        stats.valid += 1
        stats.by_type[beat.type] += 1
        yield msg
        if config.duplicate_fraction and rng.random() < config.duplicate_fraction:
            # The upstream retried: the same bytes again, right after.
            again = tick(at)
            if again is None:
                return
            stats.duplicates += 1
            yield msg._replace(send_at=again)
