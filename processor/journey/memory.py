"""What an event teaches the state about a person: consent, purchases, cart, streaks, recency."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from processor.events import MAX_SHORT_TEXT_CHARS, EventType
from processor.journey.definition import Journey
from processor.journey.outcome import EventInput
from processor.journey.state import Cart, CustomerState

PURCHASES = frozenset({EventType.order_placed, EventType.pos_purchase})
_OPT_OUT = frozenset({EventType.email_unsubscribed, EventType.email_complained})
_STATED = frozenset({EventType.signup, EventType.consent_updated})
#: The only event types that change consent or the email block (`_consent`).
CONSENT_EVENTS = frozenset(
    {*_STATED, *_OPT_OUT, EventType.newsletter_subscribe, EventType.email_bounced}
)
#: What one kind of event teaches the state: (state, event, its epoch seconds, journey).
Lesson = Callable[[CustomerState, EventInput, float, Journey], None]
#: At most this many products in a cart, so the state stays bounded whatever the tracker sends.
_MAX_CART_ITEMS = 50


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _state_consent(state: CustomerState, channel: str, value: bool, at: float) -> bool:
    """Record a consent statement unless a newer one (by event time) is known; the time also
    decides between two profiles' consents when they merge. Returns whether it was newer."""
    if at < state.consent_at.get(channel, at):
        return False
    # Replaced, not changed in place: the state a step was given shares them (`copy`).
    state.consent = {**state.consent, channel: value}
    state.consent_at = {**state.consent_at, channel: at}
    if channel == "email" and value:
        # A newer explicit opt-in lifts a hard bounce's or a complaint's block too.
        state.email_blocked = False
    return True


def _consent(state: CustomerState, event: EventInput, at: float, journey: Journey) -> None:
    props = event.properties
    if event.type in _STATED:
        consent = props.get("consent") or {}
        for channel, value in consent.items():
            if isinstance(value, bool) and channel in ("email", "sms", "push"):
                _state_consent(state, channel, value, at)
    elif event.type is EventType.newsletter_subscribe:
        _state_consent(state, "email", True, at)
    elif event.type in _OPT_OUT or (
        event.type is EventType.email_bounced and props.get("bounce_type") == "hard"
    ):
        newer = _state_consent(state, "email", False, at)
        if newer and event.type is not EventType.email_unsubscribed:
            # The address is dead or the person reported us as spam: nothing more goes there.
            state.email_blocked = True


def _purchase(state: CustomerState, event: EventInput, at: float, journey: Journey) -> None:
    props = event.properties
    if event.type in PURCHASES:
        state.purchases += 1
        state.last_purchase = at if state.last_purchase is None else max(state.last_purchase, at)
        if props.get("currency") in (None, journey.policies.shop_currency):
            state.lifetime_value += _number(props.get("value"))
        state.cart = None
    elif event.type is EventType.product_return:
        state.lifetime_value = max(0.0, state.lifetime_value - _number(props.get("value")))


def _cart(state: CustomerState, event: EventInput, at: float, journey: Journey) -> None:
    props = event.properties
    product = str(props.get("product_id", ""))
    if event.type is EventType.cart_add and product:
        if state.cart is None:
            state.cart = Cart(event.event_id)
        cart = state.cart
        if product in cart.items or len(cart.items) < _MAX_CART_ITEMS:
            quantity = props.get("quantity") or 1
            subtotal = _number(props.get("price")) * _number(quantity)
            cart.items[product] = round(cart.items.get(product, 0.0) + subtotal, 2)
        if cart.currency is None and isinstance(props.get("currency"), str):
            cart.currency = props["currency"]
    elif event.type is EventType.cart_remove and state.cart is not None:
        state.cart.items.pop(product, None)


#: Email campaigns remembered per person: more than the streaks the journey counts (6).
_MAX_CAMPAIGNS = 16
_EMAIL_EVENTS = frozenset(
    {EventType.email_delivered, EventType.email_opened, EventType.email_clicked}
)


def _email(state: CustomerState, event: EventInput, at: float, journey: Journey) -> None:
    """Record a delivery, open or click of a campaign, whatever order they arrive in: an open
    that comes before its campaign's delivery still marks that campaign as opened."""
    campaign = str(event.properties.get("campaign_id", ""))
    entry = (
        [campaign, at, None] if event.type is EventType.email_delivered else [campaign, None, at]
    )
    campaigns = state.campaigns
    newest = campaigns and (at, campaign) >= _order(campaigns[-1])
    if newest and all(c[0] != campaign for c in campaigns):
        # A campaign not seen before, and the newest: it goes last (what keep_campaigns makes
        # of it, without uniting and sorting them all again).
        state.campaigns = [*campaigns[1 - _MAX_CAMPAIGNS :], entry]
        return
    keep_campaigns(state, campaigns, [entry])


def _order(campaign: list[Any]) -> tuple[float, str]:
    """Where a campaign goes in a person's list: by delivery time (an open not yet delivered,
    by the open's time), then by id."""
    delivered, opened = campaign[1], campaign[2]
    return (delivered if delivered is not None else opened), campaign[0]


def keep_campaigns(state: CustomerState, *lists: list[list[Any]]) -> None:
    """Unite campaign lists (per campaign its earliest delivery and earliest open) into the
    state's, the newest `_MAX_CAMPAIGNS` in delivery-time order (an open not yet delivered at
    the time of the open)."""
    united: dict[str, list[Any]] = {}
    for campaign, delivered, opened in (c for campaigns in lists for c in campaigns):
        have = united.setdefault(campaign, [campaign, None, None])
        for slot, at in ((1, delivered), (2, opened)):
            if at is not None:
                have[slot] = at if have[slot] is None else min(have[slot], at)
    ordered = sorted(united.values(), key=_order)
    state.campaigns = ordered[-_MAX_CAMPAIGNS:]


def _recent(state: CustomerState, event: EventInput, at: float, journey: Journey) -> None:
    wanted = journey.tracked.get(event.type)
    if wanted is None:
        return
    # A tracked property may be one the contract does not name (and so does not bound): the
    # state keeps at most its first MAX_SHORT_TEXT_CHARS characters.
    given = event.properties
    props = {p: str(given[p])[:MAX_SHORT_TEXT_CHARS] for p in wanted if given.get(p) is not None}
    recent = state.recent
    recent.append((str(event.type), props, at))
    if len(recent) > 1 and recent[-2][2] > at:
        recent.sort(key=lambda r: r[2])  # an event older than the newest remembered
    horizon = recent[-1][2] - journey.recent_window_s
    if recent[0][2] < horizon:
        state.recent = recent = [r for r in recent if r[2] >= horizon]
    del recent[: -journey.policies.max_recent_events]


#: Linked identifiers remembered per person (for look-ups and erasure), most recent last.
_MAX_IDENTIFIERS = 32


def _identifiers(state: CustomerState, event: EventInput) -> None:
    known = state.identifiers
    new: list[str] = []
    for ident in event.identifiers:
        if ident not in known and ident not in new:
            new.append(ident)
    if new:
        # Replaced, not changed in place: the state a step was given shares it (`copy`).
        state.identifiers = [*known, *new][-_MAX_IDENTIFIERS:]


#: What each event type can teach besides its identifiers and recency, if anything.
_LESSON: dict[EventType, Lesson] = {
    **dict.fromkeys(CONSENT_EVENTS, _consent),
    **dict.fromkeys((*PURCHASES, EventType.product_return), _purchase),
    EventType.cart_add: _cart,
    EventType.cart_remove: _cart,
    **dict.fromkeys(_EMAIL_EVENTS, _email),
}


def observe(state: CustomerState, event: EventInput, journey: Journey) -> None:
    """Update the facts the rules look at; stage moves and rules come after this.

    Decisions where the journey definition is silent:
    - A cart is opened by the first `cart_add` after a purchase (its id is that event's id), holds
      product subtotals (price x quantity, 0 when no price was given), loses products on
      `cart_remove` and is closed by any purchase. Its currency is the first one stated.
    - Lifetime value sums purchase values in the shop currency (an event without a currency is
      taken to be in it; other currencies are not converted, so not counted); a `product_return`
      subtracts its value, never below 0.
    - The unopened streak counts the campaigns delivered in a row, by delivery time, without an
      `email_opened` or `email_clicked` of that campaign, whatever order they arrive in.
    - Consent and the email block follow the newest statement by event time: an older one
      that arrives later changes nothing, and a newer explicit opt-in lifts a hard bounce's
      or a complaint's block.
    """
    at = event.at
    if event.timezone:
        state.timezone = event.timezone
    _identifiers(state, event)
    lesson = _LESSON.get(event.type)
    if lesson is not None:
        lesson(state, event, at, journey)
    _recent(state, event, at, journey)
