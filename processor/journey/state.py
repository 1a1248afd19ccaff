"""Per-customer journey state with its pending timers, and its compact JSON form for the table."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

#: Bump when the stored shape changes incompatibly; `decode` refuses unknown versions loudly.
#: 2: pending timers, consent blocks, cart, recent events, caps and purchase facts.
STATE_VERSION = 2


@dataclass(frozen=True, slots=True)
class Timer:
    """A pending wake-up for one person; setting an id that is pending replaces it.

    `id` is deterministic (e.g. `wait:abandoned_cart:e17`), unique per person; `payload` is
    plain JSON and comes back in the `TimerFired` input.
    """

    id: str
    due: datetime
    name: str
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Cart:
    """The open cart: opened by the first `cart_add` after a purchase; its id is that event's id."""

    id: str
    #: product_id -> subtotal (price x quantity; 0 when the event named no price), insertion order.
    items: dict[str, float] = field(default_factory=dict)
    currency: str | None = None


@dataclass(slots=True)
class CustomerState:
    """Everything the journey remembers about one person. Times are epoch seconds (UTC)."""

    customer_id: str
    stage: str
    stage_since: float
    #: (stage, entered at) for the most recent stages, oldest first (bounded).
    history: list[tuple[str, float]] = field(default_factory=list)
    #: The most recent event ids, oldest first, bounded by the journey's dedupe window.
    seen: list[str] = field(default_factory=list)
    #: The latest explicit consent per channel (email, sms, push): True opt-in, False opt-out.
    consent: dict[str, bool] = field(default_factory=dict)
    #: Set by a hard bounce or a complaint: no email at all, transactional included.
    email_blocked: bool = False
    #: The latest `context.timezone` seen (IANA name), else None for the journey's default.
    timezone: str | None = None
    #: Repeat-limit key (`step` or `step|key`) -> epoch seconds it last emitted.
    fired: dict[str, float] = field(default_factory=dict)
    #: (channel, epoch seconds) of recent touchpoints, oldest first, for conversion paths.
    touches: list[tuple[str, float]] = field(default_factory=list)
    purchases: int = 0
    #: Sum of purchase values in the shop currency, minus returns, never below 0.
    lifetime_value: float = 0.0
    last_purchase: float | None = None
    cart: Cart | None = None
    #: (event type, the tracked properties, epoch seconds) for counting conditions, oldest first.
    recent: list[tuple[str, dict[str, str], float]] = field(default_factory=list)
    #: The most recent email campaigns: [campaign id, delivered at or None, opened (or clicked)
    #: at or None], oldest first by delivery time (an open not yet delivered, by its own time).
    campaigns: list[list[Any]] = field(default_factory=list)
    #: send_after (epoch seconds) of recent capped marketing messages, oldest first.
    sent: list[float] = field(default_factory=list)
    #: When each consent value was stated (epoch seconds): the latest wins when profiles merge.
    consent_at: dict[str, float] = field(default_factory=dict)
    #: Identifiers seen on the person's events (`kind:value`), oldest first, bounded.
    identifiers: list[str] = field(default_factory=list)
    #: Pending timers by id: (due epoch seconds, name, payload).
    timers: dict[str, tuple[float, str, dict[str, Any]]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The stored form: short keys, plain JSON types."""
        cart = self.cart
        return {
            "v": STATE_VERSION,
            "id": self.customer_id,
            "st": self.stage,
            "ss": self.stage_since,
            "h": self.history,
            "seen": self.seen,
            "c": self.consent,
            "eb": self.email_blocked,
            "tz": self.timezone,
            "f": self.fired,
            "t": self.touches,
            "p": self.purchases,
            "ltv": self.lifetime_value,
            "lp": self.last_purchase,
            "cart": None if cart is None else [cart.id, cart.items, cart.currency],
            "r": self.recent,
            "em": self.campaigns,
            "sent": self.sent,
            "tm": self.timers,
            "ca": self.consent_at,
            "ids": self.identifiers,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CustomerState:
        """Inverse of `to_dict` (builds fresh containers, so it also serves as a deep copy)."""
        if d.get("v") != STATE_VERSION:
            raise ValueError(f"journey state version {d.get('v')!r} is not {STATE_VERSION}")
        cart = d["cart"]
        return cls(
            customer_id=d["id"],
            stage=d["st"],
            stage_since=d["ss"],
            history=[(s, a) for s, a in d["h"]],
            seen=list(d["seen"]),
            consent=dict(d["c"]),
            email_blocked=d["eb"],
            timezone=d["tz"],
            fired=dict(d["f"]),
            touches=[(c, a) for c, a in d["t"]],
            purchases=d["p"],
            lifetime_value=d["ltv"],
            last_purchase=d["lp"],
            cart=None if cart is None else Cart(cart[0], dict(cart[1]), cart[2]),
            recent=[(t, dict(p), a) for t, p, a in d["r"]],
            campaigns=[list(c) for c in d["em"]] if "em" in d else _streak_only(d["us"]),
            sent=list(d["sent"]),
            timers={k: (due, name, dict(p)) for k, (due, name, p) in d["tm"].items()},
            consent_at=dict(d.get("ca", {})),
            identifiers=list(d.get("ids", [])),
        )

    @property
    def unopened_streak(self) -> int:
        """Delivered campaigns in a row, newest delivery backwards, until one that was opened
        or clicked (a campaign opened before its delivery is known stands at the open)."""
        streak = 0
        for _, _, opened in reversed(self.campaigns):
            if opened is not None:
                break
            streak += 1
        return streak

    def copy(self) -> CustomerState:
        """An independent copy, so that a step never changes the state it was given.

        Containers that the journey changes in place are copied one level deep: what they hold
        is never changed in place (tuples, and the dicts of `recent` entries and timer payloads,
        which are replaced, not edited), except a cart's items, which are copied too. Those it
        only ever replaces with new ones (consent and its times, campaigns, capped sends,
        identifiers) are shared: most events change none of them.

        Set field by field, not through `__init__`: every step makes one, and `__init__` costs
        twice as much (it checks each field for its default). A test holds the copy equal to
        the original, so that no field is left out."""
        new = object.__new__(CustomerState)
        new.customer_id = self.customer_id
        new.stage = self.stage
        new.stage_since = self.stage_since
        new.history = self.history.copy()
        new.seen = self.seen.copy()
        new.consent = self.consent
        new.email_blocked = self.email_blocked
        new.timezone = self.timezone
        new.fired = self.fired.copy()
        new.touches = self.touches.copy()
        new.purchases = self.purchases
        new.lifetime_value = self.lifetime_value
        new.last_purchase = self.last_purchase
        cart = self.cart
        new.cart = None if cart is None else Cart(cart.id, cart.items.copy(), cart.currency)
        new.recent = self.recent.copy()
        new.campaigns = self.campaigns
        new.sent = self.sent
        new.consent_at = self.consent_at
        new.identifiers = self.identifiers
        new.timers = self.timers.copy()
        return new


def _streak_only(streak: int) -> list[list[Any]]:
    """The campaigns of a state stored before they were kept one by one: as many unnamed,
    unopened campaigns as its streak counted, older than any delivered since."""
    return [[f"?{n}", float(n), None] for n in range(streak)]


def as_datetime(epoch_s: float) -> datetime:
    """Epoch seconds → aware UTC datetime."""
    return datetime.fromtimestamp(epoch_s, UTC)


def in_utc(at: datetime) -> datetime:
    """`at` as a UTC datetime (itself when it is one already). Epoch seconds of a UTC datetime
    cost a third of those of one in another zone object (pydantic's parsed `Z`, for one)."""
    return at if at.tzinfo is UTC else at.astimezone(UTC)


def timer_of(tid: str, pending: tuple[float, str, dict[str, Any]]) -> Timer:
    """A pending timer entry of the state (due, name, payload) as a Timer."""
    due, name, payload = pending
    return Timer(tid, as_datetime(due), name, dict(payload))


def due_timers(state: CustomerState | None, until: datetime | None = None) -> list[Timer]:
    """The person's pending timers in firing order (due, then id); only those due by `until`."""
    if state is None:
        return []
    limit = None if until is None else until.timestamp()
    pending = sorted(
        (due, tid) for tid, (due, _, _) in state.timers.items() if limit is None or due <= limit
    )
    return [timer_of(tid, state.timers[tid]) for _, tid in pending]


def first_due(state: CustomerState | None) -> float | None:
    """Epoch seconds of the person's earliest pending timer, None without one."""
    if state is None or not state.timers:
        return None
    return min(due for due, _, _ in state.timers.values())


def encode(state: CustomerState) -> bytes:
    """State → bytes for the table."""
    return orjson.dumps(state.to_dict())


def decode(raw: bytes | None) -> CustomerState | None:
    """Bytes from the table → state (None when there is none)."""
    return None if raw is None else CustomerState.from_dict(orjson.loads(raw))
