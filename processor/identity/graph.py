"""The identity graph: which identifiers are one person, decided the same whatever the order.

Nodes are identifiers with their kind (`c:` customer_id, `e:` email, `l:` loyalty_id, `a:`
anonymous_id); an event carrying several identifiers links each pair of them. Who is who:

- A `customer_id` is always a person of its own, and its own canonical id: two customer ids
  are never merged.
- The other identifiers form groups: connected through links between non-customer
  identifiers. A group linked to one customer id belongs to that customer. A group linked to
  several (an email claimed by two accounts) is a *conflict*: it belongs to the smallest
  customer id, and the conflict is counted. A group linked to none is an anonymous person,
  named by its strongest identifier (email, then loyalty id, then anonymous id; ties by value).

Every rule is a function of the set of links, not of their order, so replays, shuffles and
partition moves all end in the same grouping and the same canonical ids.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from processor.events import Identity

KIND_PREFIX = {"customer_id": "c:", "email": "e:", "loyalty_id": "l:", "anonymous_id": "a:"}
#: How a node's own (default) key reads on the customer-events topic.
KEY_PREFIX = {"c:": "", "e:": "email:", "l:": "loyalty:", "a:": "anon:"}
_STRENGTH = {"e:": 0, "l:": 1, "a:": 2}
_ANONYMOUS_KEYS = tuple(prefix for prefix in KEY_PREFIX.values() if prefix)
#: A group larger than this stops growing: one identifier shared by everybody (a shop's
#: test address, a kiosk cookie) must not glue all customers into one.
MAX_GROUP = 1000


def nodes_of(identity: Identity) -> list[str]:
    """The event's identifiers as nodes, strongest first."""
    return [KIND_PREFIX[kind] + value for kind, value in identity.identifiers()]


def nodes_of_json(identity: Mapping[str, Any]) -> list[str]:
    """`nodes_of` for an identity that passed validation, in its JSON form (an internal
    message's): the same nodes without validating it again."""
    stated = ((prefix, identity.get(kind)) for kind, prefix in KIND_PREFIX.items())
    return [prefix + value for prefix, value in stated if value is not None]


def is_anchor(node: str) -> bool:
    """Is this node a customer id?"""
    return node.startswith("c:")


def key_of(node: str) -> str:
    """The node's own key on the customer-events topic (`C-1`, `email:a@x`, `anon:ck`)."""
    return KEY_PREFIX[node[:2]] + node[2:]


def is_customer_key(key: str) -> bool:
    """Is this customer-events key a customer id's own (not an anonymous person's)?"""
    return not key.startswith(_ANONYMOUS_KEYS)


def _strength(node: str) -> tuple[int, str]:
    return _STRENGTH[node[:2]], node[2:]


@dataclass
class NodeRecord:
    """What the graph stores per node: its neighbours and its current canonical key."""

    neighbours: set[str] = field(default_factory=set)
    canonical: str = ""

    def to_json(self) -> dict[str, object]:
        """The stored form."""
        return {"n": sorted(self.neighbours), "c": self.canonical}

    @classmethod
    def from_json(cls, d: dict[str, object]) -> NodeRecord:
        """Inverse of `to_json`."""
        neighbours = d["n"]
        assert isinstance(neighbours, list)
        return cls(set(map(str, neighbours)), str(d["c"]))


Lookup = Callable[[str], NodeRecord | None]


@dataclass
class Change:
    """The effect of a link or an erasure on the graph."""

    #: The records that changed, to store (None deletes the node); nothing else is rewritten.
    records: dict[str, NodeRecord | None] = field(default_factory=dict)
    #: node -> (old canonical key, new canonical key) for every node whose person changed;
    #: new is None when the node was erased.
    moved: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    #: The canonical key of the event's person (a link) or the erased person's key.
    canonical: str = ""
    conflict: bool = False
    links_added: int = 0
    #: Every record read while working the change out (changed or not), by node.
    loaded: dict[str, NodeRecord] = field(default_factory=dict, repr=False)


def _load(lookup: Lookup, loaded: dict[str, NodeRecord], node: str) -> NodeRecord:
    got = loaded.get(node)
    if got is not None:
        return got
    found = lookup(node)
    record = found if found is not None else NodeRecord(canonical=key_of(node))
    loaded[node] = record
    return record


def _group(lookup: Lookup, loaded: dict[str, NodeRecord], start: Iterable[str]) -> set[str]:
    """The non-customer nodes connected to `start` through non-customer links."""
    group: set[str] = set()
    todo = [n for n in start if not is_anchor(n)]
    while todo and len(group) < MAX_GROUP:
        node = todo.pop()
        if node in group:
            continue
        group.add(node)
        todo.extend(n for n in _load(lookup, loaded, node).neighbours if not is_anchor(n))
    return group


def _owner(lookup: Lookup, loaded: dict[str, NodeRecord], group: set[str]) -> tuple[str, bool]:
    anchors = {n for node in group for n in _load(lookup, loaded, node).neighbours if is_anchor(n)}
    if anchors:
        return key_of(min(anchors)), len(anchors) > 1
    return key_of(min(group, key=_strength)), False


def link(lookup: Lookup, nodes: list[str]) -> Change:
    """Link every pair of `nodes` (one event's identifiers) and work out who moved."""
    change = Change()
    loaded, changed = change.loaded, change.records
    for a in nodes:
        rec = _load(lookup, loaded, a)
        for b in nodes:
            if a != b and b not in rec.neighbours:
                rec.neighbours.add(b)
                changed[a] = rec
                change.links_added += 1
    change.links_added //= 2
    anchors = [n for n in nodes if is_anchor(n)]
    if anchors and not change.links_added:
        # A customer's identifiers that the graph links already, the usual link: the event is
        # the customer's whatever the groups say, and nobody moves.
        change.canonical = key_of(min(anchors))
        return change
    return relink(lookup, nodes, change, anchors)


def relink(lookup: Lookup, nodes: list[str], change: Change, anchors: list[str]) -> Change:
    """Work out who `nodes`' groups belong to now, moving every node whose owner changed (the
    rest of `link`; for anonymous identifiers also when the link added nothing, as their
    person is the group's owner)."""
    loaded, changed = change.loaded, change.records
    group = _group(lookup, loaded, nodes)
    if group:
        owner, change.conflict = _owner(lookup, loaded, group)
        for node in group:
            rec = _load(lookup, loaded, node)
            if rec.canonical != owner:
                change.moved[node] = (rec.canonical, owner)
                rec.canonical = owner
                changed[node] = rec
    else:
        owner = key_of(min(anchors))
    # The event belongs to its strongest identifier's person: its customer id if it has one.
    change.canonical = key_of(min(anchors)) if anchors else owner
    return change


def erase(lookup: Lookup, node: str) -> Change:
    """Remove the person that `node` (any identifier) belongs to: a customer with the groups it
    owns, or an anonymous person's whole group; every link of theirs goes too. `canonical` is
    the person's key (the node's own key when the graph does not know the node)."""
    if is_anchor(node):
        return _erase_customer(lookup, node)
    found = lookup(node)
    if found is None:
        return Change(canonical=key_of(node))
    if is_customer_key(found.canonical):
        return _erase_customer(lookup, "c:" + found.canonical)
    change = Change(canonical=found.canonical)
    loaded = change.loaded
    loaded[node] = found
    gone = {n for n in _group(lookup, loaded, [node])
            if _load(lookup, loaded, n).canonical == found.canonical}  # fmt: skip
    _unlink(lookup, change, gone, keep=None)
    return change


def _unlink(lookup: Lookup, change: Change, gone: set[str], keep: str | None) -> None:
    """Delete the nodes in `gone` and every link to them; each but `keep` moves to no one."""
    loaded, changed = change.loaded, change.records
    for node in sorted(gone):
        rec = _load(lookup, loaded, node)
        for other in rec.neighbours - gone:
            record = changed[other] = _load(lookup, loaded, other)
            record.neighbours -= gone
        if node != keep:
            change.moved[node] = (rec.canonical, None)
    for node in gone:
        changed[node] = None


def _erase_customer(lookup: Lookup, customer: str) -> Change:
    """Remove the person of customer node `customer`: the node, the groups it owns, every link."""
    change = Change(canonical=key_of(customer))
    loaded = change.loaded
    root = lookup(customer)
    if root is None:
        return change
    loaded[customer] = root
    mine: set[str] = set()
    for start in sorted(n for n in root.neighbours if not is_anchor(n)):
        if start in mine:
            continue
        group = _group(lookup, loaded, [start])
        owner, _ = _owner(lookup, loaded, group)
        if owner == change.canonical:
            mine |= group
    _unlink(lookup, change, mine | {customer}, keep=customer)
    return change


def apply(store: dict[str, NodeRecord], change: Change) -> None:
    """Keep `change`'s records in a graph held in a dict (None deletes the node)."""
    for node, rec in change.records.items():
        if rec is None:
            store.pop(node, None)
        else:
            store[node] = rec


def grouping(events: Iterable[list[str]]) -> dict[str, str]:
    """Reference: node -> canonical key after linking `events` in order, from scratch."""
    store: dict[str, NodeRecord] = {}
    named: dict[str, None] = {}
    for nodes in events:
        named.update(dict.fromkeys(nodes))
        apply(store, link(store.get, nodes))
    return {node: _canonical(store, node) for node in named}


def _canonical(store: dict[str, NodeRecord], node: str) -> str:
    rec = store.get(node)
    return key_of(node) if is_anchor(node) or rec is None else rec.canonical
