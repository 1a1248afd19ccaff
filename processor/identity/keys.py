"""Which person an event belongs to, from the identifiers it carries."""

from __future__ import annotations

from processor.events import Identity

#: Prefixes keep identifiers of different kinds from colliding ("L-1" as email vs loyalty id).
#: A `customer_id` is the canonical id itself and carries no prefix.
PREFIX = {"email": "email:", "loyalty_id": "loyalty:", "anonymous_id": "anon:"}


def canonical_key(identity: Identity) -> str:
    """The canonical customer id: the `customer_id` when there is one, else the strongest
    other identifier (email, then loyalty id, then anonymous id), prefixed by its kind."""
    kind, value = identity.identifiers()[0]
    return value if kind == "customer_id" else PREFIX[kind] + value
