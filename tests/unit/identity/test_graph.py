"""The identity graph: linking, conflicts, erasure, and order independence."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processor.events import Identity
from processor.identity.graph import (
    Change,
    NodeRecord,
    apply,
    erase,
    grouping,
    is_anchor,
    key_of,
    link,
    nodes_of,
    nodes_of_json,
    relink,
)


def test_anonymous_browsing_then_signup_then_login_is_one_customer() -> None:
    store: dict[str, NodeRecord] = {}
    first = link(store.get, ["a:ck-1"])
    assert first.canonical == "anon:ck-1"
    apply(store, first)
    signup = link(store.get, ["c:C-1", "e:ana@example.com"])
    apply(store, signup)
    assert signup.canonical == "C-1"
    assert signup.moved == {"e:ana@example.com": ("email:ana@example.com", "C-1")}
    login = link(store.get, ["e:ana@example.com", "a:ck-1"])
    apply(store, login)
    assert login.canonical == "C-1"
    assert login.moved == {"a:ck-1": ("anon:ck-1", "C-1")}
    assert not login.conflict


def test_anonymous_people_are_named_by_their_strongest_identifier() -> None:
    groups = grouping([["a:ck-2", "l:L-5"], ["a:ck-2", "e:b@x"], ["a:ck-9"]])
    assert groups == {"a:ck-2": "email:b@x", "l:L-5": "email:b@x", "e:b@x": "email:b@x",
                      "a:ck-9": "anon:ck-9"}  # fmt: skip


def test_an_email_claimed_by_two_customers_goes_to_the_smallest_and_is_a_conflict() -> None:
    store: dict[str, NodeRecord] = {}
    apply(store, link(store.get, ["c:C-9", "e:x@x"]))
    second = link(store.get, ["c:C-2", "e:x@x"])
    assert second.conflict
    assert second.canonical == "C-2"
    assert second.moved == {"e:x@x": ("C-9", "C-2")}
    apply(store, second)
    assert grouping([["c:C-9", "e:x@x"], ["c:C-2", "e:x@x"]])["e:x@x"] == "C-2"
    assert store["c:C-9"].canonical == "C-9"  # customer ids are never merged


def test_erase_removes_the_person_and_every_link() -> None:
    store: dict[str, NodeRecord] = {}
    for nodes in (["c:C-1", "e:a@x"], ["e:a@x", "a:ck"], ["c:C-1", "l:L-1"], ["c:C-2", "l:L-2"]):
        apply(store, link(store.get, nodes))
    gone = erase(store.get, "c:C-1")
    assert gone.canonical == "C-1"
    assert set(gone.moved) == {"e:a@x", "a:ck", "l:L-1"}
    apply(store, gone)
    assert set(store) == {"c:C-2", "l:L-2"}
    assert store["c:C-2"].neighbours == {"l:L-2"}


def test_erase_keeps_a_conflicted_group_owned_by_another_customer() -> None:
    store: dict[str, NodeRecord] = {}
    for nodes in (["c:C-1", "e:a@x"], ["c:C-2", "e:b@x"], ["c:C-1", "e:b@x"]):
        apply(store, link(store.get, nodes))
    # b@x is claimed by C-1 and C-2 and belongs to C-1; erasing C-2 leaves it with C-1.
    apply(store, erase(store.get, "c:C-2"))
    assert set(store) == {"c:C-1", "e:a@x", "e:b@x"}
    assert store["e:b@x"].neighbours == {"c:C-1"}


def test_key_of() -> None:
    assert [key_of(n) for n in ("c:C-1", "e:a@x", "l:L", "a:ck")] == [
        "C-1", "email:a@x", "loyalty:L", "anon:ck",
    ]  # fmt: skip


POOL = ["c:C-1", "c:C-2", "e:a@x", "e:b@x", "l:L-1", "l:L-2", "a:k1", "a:k2", "a:k3"]
events = st.lists(st.lists(st.sampled_from(POOL), min_size=1, max_size=4, unique=True), max_size=25)


@settings(max_examples=300, deadline=None)
@given(events, st.randoms(use_true_random=False))
def test_grouping_does_not_depend_on_the_order_of_events(
    evs: list[list[str]], rnd: random.Random
) -> None:
    shuffled = [list(e) for e in evs]
    rnd.shuffle(shuffled)
    for e in shuffled:
        rnd.shuffle(e)
    assert grouping(evs) == grouping(shuffled)


@settings(max_examples=200, deadline=None)
@given(events)
def test_every_node_of_a_person_names_the_same_canonical_key(evs: list[list[str]]) -> None:
    groups = grouping(evs)
    for nodes in evs:
        canonicals = {groups[n] for n in nodes if not n.startswith("c:")}
        customers = {n for n in nodes if n.startswith("c:")}
        if not customers:
            assert len(canonicals) <= 1


def test_erase_by_any_identifier_of_a_customer_erases_that_customer() -> None:
    links = (["c:C-1", "e:a@x"], ["e:a@x", "a:ck"], ["c:C-1", "l:L-1"], ["c:C-2", "l:L-2"])
    for named in ("e:a@x", "a:ck", "l:L-1", "c:C-1"):
        store: dict[str, NodeRecord] = {}
        for nodes in links:
            apply(store, link(store.get, nodes))
        gone = erase(store.get, named)
        assert gone.canonical == "C-1", named
        assert set(gone.moved) == {"e:a@x", "a:ck", "l:L-1"}, named
        apply(store, gone)
        assert set(store) == {"c:C-2", "l:L-2"}, named


def test_erase_by_an_identifier_of_an_anonymous_person_erases_their_group() -> None:
    store: dict[str, NodeRecord] = {}
    for nodes in (["e:n@x", "a:ck-1"], ["a:ck-1", "l:L-9"], ["c:C-2", "e:b@x"]):
        apply(store, link(store.get, nodes))
    gone = erase(store.get, "a:ck-1")
    assert gone.canonical == "email:n@x"
    assert gone.moved == {
        "e:n@x": ("email:n@x", None),
        "a:ck-1": ("email:n@x", None),
        "l:L-9": ("email:n@x", None),
    }
    apply(store, gone)
    assert set(store) == {"c:C-2", "e:b@x"}


def test_erase_by_an_identifier_the_graph_never_saw_names_its_own_key() -> None:
    # A subscriber whose events carried only an email never reaches the graph: their state is
    # at the email's own key, which the erase names.
    gone = erase({}.get, "e:solo@x")
    assert (gone.canonical, gone.moved, gone.records) == ("email:solo@x", {}, {})


@pytest.mark.parametrize(
    "stated",
    [
        {"customer_id": "C-1"},
        {"email": " Ana@Example.COM ", "anonymous_id": "ck-1"},
        {"customer_id": 42, "email": "a@x", "loyalty_id": "L-5", "anonymous_id": "ck-2"},
        {"loyalty_id": "0", "anonymous_id": ""},
    ],
)
def test_nodes_of_a_validated_identity_in_json_are_its_nodes(stated: dict[str, object]) -> None:
    identity = Identity.model_validate(stated)
    assert nodes_of_json(identity.model_dump(mode="json")) == nodes_of(identity)


def test_a_link_the_graph_already_holds_rewrites_no_record() -> None:
    store: dict[str, NodeRecord] = {}
    apply(store, link(store.get, ["c:C-1", "e:a@x", "a:ck-1"]))
    again = link(store.get, ["e:a@x", "a:ck-1"])
    assert (again.canonical, again.records, again.moved, again.links_added) == ("C-1", {}, {}, 0)
    more = link(store.get, ["e:a@x", "l:L-1"])
    assert set(more.records) == {"e:a@x", "l:L-1"}  # the new link's two ends only


@settings(max_examples=300, deadline=None)
@given(events, st.lists(st.integers(0, 24), max_size=3))
def test_a_customers_link_that_adds_nothing_names_the_person_relinking_would(
    evs: list[list[str]], erasures: list[int]
) -> None:
    """`link` takes a customer's link the graph holds already as it is; working the groups out
    again (`relink`) names the same person and moves nobody, erasures in between included."""
    store: dict[str, NodeRecord] = {}
    for n, nodes in enumerate(evs):
        if n in erasures:
            apply(store, erase(store.get, nodes[0]))
        copy = {k: NodeRecord(set(r.neighbours), r.canonical) for k, r in store.items()}
        change = link(store.get, nodes)
        anchors = [x for x in nodes if is_anchor(x)]
        if anchors and not change.links_added:
            again = relink(copy.get, nodes, Change(), anchors)
            assert again.canonical == change.canonical
            assert again.moved == {}
            assert again.records == {}
        apply(store, change)
