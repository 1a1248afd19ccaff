"""The customers' links the link agent knows the graph holds already.

Most links are a customer's identifiers seen together once more (a logged-in customer's
cookie on every page view): the graph links every pair of them already, and the event is the
customer's whatever the groups say (processor/identity/graph.py `link`). Reading their records
to find that out again is most of the link agent's work. The agent is the graph's only writer,
and only an erasure takes a link away, so a link it handled stays in the graph until an
erasure or until its partition is restored from the changelog (a rebalance): it forgets them
all then (`forget`).
"""

from __future__ import annotations

from collections.abc import Sequence


class Linked:
    """The identifier sets (one event's nodes, in the event's order) linked in the graph.

    Bounded: the oldest set goes first when `most` are held."""

    def __init__(self, most: int = 65536) -> None:
        self._most = most
        #: Used as an ordered set: the oldest first.
        self._known: dict[tuple[str, ...], None] = {}

    def __contains__(self, nodes: Sequence[str]) -> bool:
        return tuple(nodes) in self._known

    def add(self, nodes: Sequence[str]) -> None:
        """Every pair of `nodes` is linked in the graph now."""
        known = self._known
        if len(known) >= self._most:
            del known[next(iter(known))]
        known[tuple(nodes)] = None

    def forget(self) -> None:
        """Links may have gone (an erasure) or the graph was read again (a rebalance)."""
        self._known.clear()

    def __len__(self) -> int:
        return len(self._known)
