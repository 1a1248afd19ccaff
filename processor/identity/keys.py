"""Which person an event names first, from its identifiers alone (before any linking)."""

from __future__ import annotations

from processor.events import Identity
from processor.identity import graph

#: Prefixes keep identifiers of different kinds from colliding ("L-1" as email vs loyalty id).
#: A `customer_id` is the canonical id itself and carries no prefix.
PREFIX = {
    kind: graph.KEY_PREFIX[node]
    for kind, node in graph.KIND_PREFIX.items()
    if kind != "customer_id"
}


def canonical_key(identity: Identity) -> str:
    """The key of the event's strongest identifier: its `customer_id` when there is one, else
    the email, loyalty id or anonymous id, prefixed by its kind. Linked identifiers may belong
    to another person; the identity agents know that (processor/identity/graph.py)."""
    return graph.key_of(graph.nodes_of(identity)[0])
