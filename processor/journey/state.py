"""Per-customer journey state, and its compact JSON form for the changelogged table."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

#: Bump when the stored shape changes incompatibly; `decode` refuses unknown versions loudly.
STATE_VERSION = 1


@dataclass(slots=True)
class CustomerState:
    """Everything the journey remembers about one person. Times are epoch seconds (UTC)."""

    customer_id: str
    stage: str
    stage_since: float
    #: (stage, entered at) for every stage the person was in, oldest first.
    history: list[tuple[str, float]] = field(default_factory=list)
    #: The most recent event ids, oldest first, bounded by the journey's dedupe window.
    seen: list[str] = field(default_factory=list)
    #: The latest explicit consent per channel (email, sms, push): True opt-in, False opt-out.
    consent: dict[str, bool] = field(default_factory=dict)
    #: Rule name -> epoch seconds it last fired, for `once` and repeat limits.
    fired: dict[str, float] = field(default_factory=dict)
    #: (channel, epoch seconds) of recent touchpoints, oldest first, for conversion paths.
    touches: list[tuple[str, float]] = field(default_factory=list)
    purchases: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The stored form: short keys, plain JSON types."""
        return {
            "v": STATE_VERSION,
            "id": self.customer_id,
            "st": self.stage,
            "ss": self.stage_since,
            "h": self.history,
            "seen": self.seen,
            "c": self.consent,
            "f": self.fired,
            "t": self.touches,
            "p": self.purchases,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CustomerState:
        """Inverse of `to_dict`."""
        if d.get("v") != STATE_VERSION:
            raise ValueError(f"journey state version {d.get('v')!r} is not {STATE_VERSION}")
        return cls(
            customer_id=d["id"],
            stage=d["st"],
            stage_since=d["ss"],
            history=[(s, a) for s, a in d["h"]],
            seen=list(d["seen"]),
            consent=dict(d["c"]),
            fired=dict(d["f"]),
            touches=[(c, a) for c, a in d["t"]],
            purchases=d["p"],
        )


def encode(state: CustomerState) -> bytes:
    """State → bytes for the table."""
    return orjson.dumps(state.to_dict())


def decode(raw: bytes | None) -> CustomerState | None:
    """Bytes from the table → state (None when there is none)."""
    return None if raw is None else CustomerState.from_dict(orjson.loads(raw))
