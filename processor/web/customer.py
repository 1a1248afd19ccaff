"""The customer API's answer: response models and their mapping from the journey state."""

from __future__ import annotations

from datetime import datetime
from typing import Literal, get_args

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from processor.identity.keys import PREFIX
from processor.journey.state import CustomerState, as_datetime

IdentifierKind = Literal["customer_id", "email", "loyalty_id", "anonymous_id"]
KINDS: tuple[IdentifierKind, ...] = get_args(IdentifierKind)


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StageEntry(_Out):
    """One stage the person entered, and when (the most recent ones, oldest first)."""

    stage: str
    entered_at: AwareDatetime


class PendingTimer(_Out):
    """A wake-up the journey has set for the person: a wait, a follow-up, a time-driven move."""

    id: str = Field(description="Deterministic per person, e.g. `wait:abandoned_cart:e17`.")
    name: str = Field(description="What fires: a rule step or a stage's time-driven move.")
    due: AwareDatetime


class Consent(_Out):
    """The latest explicit consent per channel; a channel never stated is absent."""

    email: bool | None = None
    sms: bool | None = None
    push: bool | None = None
    email_blocked: bool = Field(
        description="A hard bounce or a complaint: no email at all, transactional included."
    )


class RecentAction(_Out):
    """The last emission of one rule step (per key for keyed steps), as kept for repeat limits.

    The state keeps no copy of the action messages: those are on `journey.actions`.
    """

    step: str = Field(description="The rule step, e.g. `welcome` or `onboarding_tips`.")
    key: str | None = Field(description="The step's key (e.g. a cart id) for per-key limits.")
    emitted_at: AwareDatetime


class LinkedIdentifier(_Out):
    """An identifier known to name this person."""

    kind: IdentifierKind
    value: str


class Customer(_Out):
    """Everything the owning worker's journey state holds about one person, personal data."""

    customer_id: str = Field(
        description="The canonical key: the `customer_id`, else `email:…`, `loyalty:…`, `anon:…`."
    )
    journey: str
    stage: str
    stage_since: AwareDatetime
    stage_history: list[StageEntry]
    pending_timers: list[PendingTimer] = Field(description="In firing order.")
    consent: Consent
    recent_actions: list[RecentAction] = Field(description="Newest first.")
    linked_identifiers: list[LinkedIdentifier]
    timezone: str | None = Field(description="The latest `context.timezone` seen (IANA name).")
    purchases: int
    lifetime_value: float
    last_purchase_at: AwareDatetime | None


class Problem(_Out):
    """An error answer; it never echoes a token, and names no person unless they asked for it."""

    error: str
    detail: str


#: The kinds whose canonical key carries a prefix (a customer_id is the key itself).
PREFIXED_KINDS: tuple[IdentifierKind, ...] = ("email", "loyalty_id", "anonymous_id")


def identifiers_of(state: CustomerState) -> list[LinkedIdentifier]:
    """The identifiers the state has seen on the person's events (oldest first), led by the one
    the canonical key itself names."""
    key = state.customer_id
    own: tuple[IdentifierKind, str] = ("customer_id", key)
    for kind in PREFIXED_KINDS:
        if key.startswith(PREFIX[kind]):
            own = (kind, key.removeprefix(PREFIX[kind]))
    pairs = [own]
    for ident in state.identifiers:
        kind_name, _, value = ident.partition(":")
        for kind in KINDS:
            if kind == kind_name and (kind, value) not in pairs:
                pairs.append((kind, value))
    return [LinkedIdentifier(kind=kind, value=value) for kind, value in pairs]


def _at(epoch_s: float) -> datetime:
    return as_datetime(epoch_s)


def customer_from_state(state: CustomerState, journey: str) -> Customer:
    """The API's view of one person's journey state."""
    fired = sorted(state.fired.items(), key=lambda kv: (-kv[1], kv[0]))
    recent = []
    for limit_key, at in fired:
        step, _, key = limit_key.partition("|")
        recent.append(RecentAction(step=step, key=key or None, emitted_at=_at(at)))
    timers = sorted(state.timers.items(), key=lambda kv: (kv[1][0], kv[0]))
    consent = state.consent
    return Customer(
        customer_id=state.customer_id,
        journey=journey,
        stage=state.stage,
        stage_since=_at(state.stage_since),
        stage_history=[StageEntry(stage=s, entered_at=_at(a)) for s, a in state.history],
        pending_timers=[
            PendingTimer(id=tid, name=name, due=_at(due)) for tid, (due, name, _) in timers
        ],
        consent=Consent(
            email=consent.get("email"),
            sms=consent.get("sms"),
            push=consent.get("push"),
            email_blocked=state.email_blocked,
        ),
        recent_actions=recent,
        linked_identifiers=identifiers_of(state),
        timezone=state.timezone,
        purchases=state.purchases,
        lifetime_value=state.lifetime_value,
        last_purchase_at=None if state.last_purchase is None else _at(state.last_purchase),
    )
