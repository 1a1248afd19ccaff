"""The simulated customers: one script of touchpoints per persona from the seeds. Pure."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

MINUTE_S = 60.0
HOUR_S = 3600.0
DAY_S = 86400.0

_FIRST = ("anna", "ben", "clara", "deniz", "emil", "fatma", "greta", "hannes", "ida", "jonas")
_LAST = ("schmidt", "yilmaz", "weber", "novak", "becker", "wagner", "kaya", "hoffmann")
#: (category, product ids, typical price in EUR)
_CATALOG = (
    ("kaffee", ("P-101", "P-102", "P-103"), 24.9),
    ("geschirr", ("P-201", "P-202", "P-203"), 39.0),
    ("textil", ("P-301", "P-302", "P-303"), 59.5),
)
_STORES = ("S-01", "S-07", "S-12")


@dataclass(frozen=True)
class Who:
    """The identifiers a simulated person has; which of them an event carries depends on it."""

    index: int
    customer_id: str
    email: str
    loyalty_id: str
    anonymous_id: str

    def web(self, **more: str) -> dict[str, str]:
        """A web tracker's identity once the person is logged in: account and cookie."""
        return {"customer_id": self.customer_id, "anonymous_id": self.anonymous_id, **more}


@dataclass(frozen=True)
class Beat:
    """One touchpoint of a script, `at_s` simulated seconds after the person's first one."""

    at_s: float
    channel: str
    type: str
    identity: dict[str, str]
    properties: dict[str, Any] = field(default_factory=dict)
    context: dict[str, str] = field(default_factory=dict)


Script = Callable[[Who, random.Random], list[Beat]]


@dataclass(frozen=True)
class Persona:
    """A kind of customer: a name, the seed it comes from, and its script."""

    name: str
    seed: str
    summary: str
    script: Script


def who(seed: int, index: int) -> Who:
    """Identifiers of the `index`-th simulated person of a run with `seed`."""
    first, last = _FIRST[index % len(_FIRST)], _LAST[(index // len(_FIRST)) % len(_LAST)]
    return Who(
        index=index,
        customer_id=f"C{seed}-{index:05d}",
        email=f"{first}.{last}.{seed}.{index}@example.com",
        loyalty_id=f"L{seed}-{index:05d}",
        anonymous_id=f"ck-{seed}-{index:05d}",
    )


def _product(rng: random.Random) -> tuple[str, str, float]:
    category, products, price = rng.choice(_CATALOG)
    return category, rng.choice(products), price


def _buy(order_id: str, value: float, items: list[str]) -> dict[str, Any]:
    return {"order_id": order_id, "value": round(value, 2), "currency": "EUR", "items": items}


def cart_abandoner(p: Who, rng: random.Random) -> list[Beat]:
    """Seed 002 (69 % of carts are abandoned): fills a cart, leaves; buys after the reminder."""
    cat, pid, price = _product(rng)
    return [
        Beat(0, "web", "page_view", p.web(), {"url": "/", "utm_source": "newsletter"}),
        Beat(2 * MINUTE_S, "web", "signup", p.web(email=p.email),
             {"consent": {"email": True, "sms": False, "push": False}}),
        Beat(5 * MINUTE_S, "web", "product_view", p.web(),
             {"product_id": pid, "category": cat, "price": price}),
        Beat(9 * MINUTE_S, "web", "cart_add", p.web(),
             {"product_id": pid, "quantity": 1, "price": price, "currency": "EUR"}),
        # The reminder is due 1 h after the cart_add; the purchase comes two days later.
        Beat(3 * DAY_S + 2 * HOUR_S, "web", "order_placed", p.web(),
             _buy(f"O-{p.customer_id}-1", price, [pid])),
    ]  # fmt: skip


def store_researcher(p: Who, rng: random.Random) -> list[Beat]:
    """Seed 003: informs herself online, joins the loyalty programme, buys in the store."""
    cat, _, price = _product(rng)
    products = next(ps for c, ps, _ in _CATALOG if c == cat)
    store = rng.choice(_STORES)
    views = [
        Beat(6 * MINUTE_S + i * 4 * MINUTE_S, "web", "product_view", p.web(),
             {"product_id": pid, "category": cat, "price": price})
        for i, pid in enumerate(products)
    ]  # fmt: skip
    return [
        Beat(0, "web", "page_view", p.web(), {"url": "/filialen", "referrer": "search"}),
        Beat(3 * MINUTE_S, "web", "search", p.web(), {"query": cat}),
        *views,
        # The loyalty system links the card to the online account (seed 003, point 5).
        Beat(25 * MINUTE_S, "store", "loyalty_signup",
             {"customer_id": p.customer_id, "email": p.email, "loyalty_id": p.loyalty_id},
             {"loyalty_id": p.loyalty_id}),
        # The POS only knows the loyalty card.
        Beat(2 * DAY_S + 11 * HOUR_S, "store", "store_visit", {"loyalty_id": p.loyalty_id},
             {"store_id": store}),
        Beat(2 * DAY_S + 11 * HOUR_S + 20 * MINUTE_S, "store", "pos_purchase",
             {"loyalty_id": p.loyalty_id},
             {"store_id": store, **_buy(f"POS-{p.customer_id}-1", price, [products[0]])}),
    ]  # fmt: skip


def loyal_buyer(p: Who, rng: random.Random) -> list[Beat]:
    """Seed 002 "Gutscheine für Treue": buys three times within two weeks."""
    cat, pid, price = _product(rng)
    values = [round(price * rng.uniform(1.5, 2.5), 2) for _ in range(3)]
    return [
        Beat(0, "web", "signup", p.web(email=p.email),
             {"consent": {"email": True, "sms": False, "push": False}}),
        Beat(5 * MINUTE_S, "web", "product_view", p.web(), {"product_id": pid, "category": cat}),
        Beat(20 * MINUTE_S, "web", "order_placed", p.web(),
             _buy(f"O-{p.customer_id}-1", values[0], [pid])),
        Beat(6 * DAY_S, "web", "order_placed", p.web(),
             _buy(f"O-{p.customer_id}-2", values[1], [pid])),
        Beat(12 * DAY_S, "web", "order_placed", p.web(),
             _buy(f"O-{p.customer_id}-3", values[2], [pid])),
    ]  # fmt: skip


def _survey_taker(p: Who, rng: random.Random, nps: int, comment: str) -> list[Beat]:
    cat, pid, price = _product(rng)
    consent = nps >= 9  # the detractor never opted in to marketing mail
    return [
        Beat(0, "web", "page_view", p.web(), {"url": f"/{cat}"}),
        Beat(4 * MINUTE_S, "web", "signup", p.web(email=p.email),
             {"consent": {"email": consent, "sms": False, "push": False}}),
        # Comes back two days later, looks once more and buys (no retargeting: bought at once).
        Beat(2 * DAY_S, "web", "product_view", p.web(), {"product_id": pid, "category": cat}),
        Beat(2 * DAY_S + 40 * MINUTE_S, "web", "order_placed", p.web(),
             _buy(f"O-{p.customer_id}-1", price, [pid])),
        # After the onboarding tips (3 d after the purchase): the survey comes with them.
        Beat(6 * DAY_S, "web", "survey_response", p.web(), {"nps": nps, "comment": comment}),
    ]  # fmt: skip


def promoter(p: Who, rng: random.Random) -> list[Beat]:
    """Seed 001: answers the survey with NPS 9-10 and becomes an advocate."""
    return _survey_taker(p, rng, rng.choice((9, 10)), "Tolle Beratung, gerne wieder")


def detractor(p: Who, rng: random.Random) -> list[Beat]:
    """Seed 001/000: answers the survey with NPS 0-6, then returns the order."""
    beats = _survey_taker(p, rng, rng.randint(0, 6), "Lieferung kam zu spät")
    order = beats[3].properties
    ret = Beat(7 * DAY_S, "store", "product_return", {"customer_id": p.customer_id},
               {"order_id": order["order_id"], "value": order["value"]})  # fmt: skip
    return [*beats, ret]


def newsletter_dropout(p: Who, rng: random.Random) -> list[Beat]:
    """Seed 002: subscribes, opens the first newsletter, then stops opening them."""
    me = {"email": p.email}
    beats = [Beat(0, "web", "newsletter_subscribe", me)]
    # Twice a week a campaign; only the first is opened, the next six are not.
    for n in range(1, 8):
        campaign = {"campaign_id": f"nl-{n:02d}", "message_id": f"m-{p.index}-{n}"}
        at = (1 + 3 * (n - 1)) * DAY_S + 7 * HOUR_S
        beats.append(Beat(at, "email", "email_delivered", me, campaign))
        if n == 1:
            beats.append(Beat(at + 3 * HOUR_S, "email", "email_opened", me, campaign))
    return beats


def lapser(p: Who, rng: random.Random) -> list[Beat]:
    """Seed 002 "Kunden, die das Interesse verloren haben": buys once and never again."""
    cat, pid, price = _product(rng)
    return [
        Beat(0, "web", "signup", p.web(email=p.email),
             {"consent": {"email": True, "sms": False, "push": False}}),
        Beat(5 * MINUTE_S, "web", "product_view", p.web(), {"product_id": pid, "category": cat}),
        Beat(12 * MINUTE_S, "web", "order_placed", p.web(),
             _buy(f"O-{p.customer_id}-1", price, [pid])),
    ]  # fmt: skip


PERSONAS: dict[str, Persona] = {
    p.name: p
    for p in (
        Persona(
            "cart_abandoner", "002", "abandons a cart, buys after the reminder", cart_abandoner
        ),
        Persona("store_researcher", "003", "researches online, buys in store", store_researcher),
        Persona("loyal_buyer", "002", "buys three times, earns the loyalty coupon", loyal_buyer),
        Persona("promoter", "001", "answers the survey with NPS 9-10", promoter),
        Persona("detractor", "001", "answers the survey with NPS 0-6, returns", detractor),
        Persona("newsletter_dropout", "002", "stops opening the newsletter", newsletter_dropout),
        Persona("lapser", "002", "buys once, never comes back", lapser),
    )
}

#: The default mix: how many of every 13 customers follow each persona.
DEFAULT_MIX = {
    "cart_abandoner": 3,
    "store_researcher": 2,
    "loyal_buyer": 2,
    "promoter": 1,
    "detractor": 1,
    "newsletter_dropout": 2,
    "lapser": 2,
}
