"""The customers' links the link agent knows the graph holds already."""

from __future__ import annotations

from processor.stream.agents.linked import Linked


def test_a_link_is_known_once_added_until_forgotten() -> None:
    linked = Linked()
    nodes = ["c:C-1", "a:ck-1"]
    assert nodes not in linked
    linked.add(nodes)
    assert nodes in linked
    assert ("c:C-1", "a:ck-1") in linked
    # Another set of the same person's identifiers is not the same link.
    assert ["c:C-1", "e:ana@example.com", "a:ck-1"] not in linked
    assert ["c:C-1"] not in linked
    linked.forget()
    assert nodes not in linked
    assert len(linked) == 0


def test_the_oldest_link_goes_first_when_full() -> None:
    linked = Linked(most=2)
    for n in range(3):
        linked.add(["c:C-1", f"a:ck-{n}"])
    assert len(linked) == 2
    assert ["c:C-1", "a:ck-0"] not in linked
    assert ["c:C-1", "a:ck-1"] in linked
    assert ["c:C-1", "a:ck-2"] in linked
