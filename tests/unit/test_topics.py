"""Topics are declared once under topics/, and the code agrees with the declarations."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from processor import topics as t
from processor.settings import REPO_ROOT

DECLARED = t.load(REPO_ROOT / "topics")


def test_code_and_declarations_name_the_same_topics() -> None:
    assert set(DECLARED) == set(t.ALL)


def test_contract_topics_have_the_contract_cleanup_and_retention() -> None:
    day_ms = 86_400_000
    want = {
        t.WEB: 7, t.EMAIL: 7, t.STORE: 7, t.DEADLETTER: 30, t.ACTIONS: 7,
        t.TRANSITIONS: 30, t.CONTROL: 7,
    }  # fmt: skip
    for name, days in want.items():
        assert DECLARED[name].config["cleanup.policy"] == "delete", name
        assert DECLARED[name].config["retention.ms"] == str(days * day_ms), name


def test_roles() -> None:
    assert {n for n, s in DECLARED.items() if s.role == "inbound"} == {*t.INBOUND, t.CONTROL}
    outbound = {n for n, s in DECLARED.items() if s.role == "outbound"}
    assert outbound == {t.DEADLETTER, t.ACTIONS, t.TRANSITIONS}


def test_internal_topics_follow_faust_naming() -> None:
    # Faust derives a table's changelog name; a mismatch would make it use an undeclared topic.
    assert f"{t.APP_ID}-{t.JOURNEY_TABLE}-changelog" == t.JOURNEY_CHANGELOG
    assert f"{t.APP_ID}-{t.GRAPH_TABLE}-changelog" == t.GRAPH_CHANGELOG
    assert f"{t.APP_ID}-{t.ALIAS_TABLE}-changelog" == t.ALIAS_CHANGELOG
    assert DECLARED[t.JOURNEY_CHANGELOG].config["cleanup.policy"] == "compact"


def test_topics_joined_by_key_are_copartitioned() -> None:
    assert t.copartition_problems(DECLARED) == []
    group = {n for n, s in DECLARED.items() if s.copartition == "customer"}
    # The journey agent reads customer-events and writes the table: Faust needs them equal.
    assert {t.CUSTOMER_EVENTS, t.JOURNEY_CHANGELOG} <= group
    identifier = {n for n, s in DECLARED.items() if s.copartition == "identifier"}
    assert identifier == {t.IDENTITY_ROUTES, t.ALIAS_CHANGELOG}
    graph = {n for n, s in DECLARED.items() if s.copartition == "identity-graph"}
    assert graph == {t.IDENTITY_LINKS, t.GRAPH_CHANGELOG}
    # One writer of the identity graph: the link topic must have exactly one partition.
    assert DECLARED[t.IDENTITY_LINKS].partitions == 1


def test_copartition_check_catches_a_mismatch() -> None:
    broken = dict(DECLARED)
    broken[t.JOURNEY_CHANGELOG] = dataclasses.replace(broken[t.JOURNEY_CHANGELOG], partitions=3)
    problems = t.copartition_problems(broken)
    assert len(problems) == 1
    assert "customer" in problems[0]
    assert f"{t.JOURNEY_CHANGELOG}=3" in problems[0]


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("name: x\nrole: inbound\nkey: k\nvalue: v\n", "missing partitions"),
        ("name: x\nrole: sideways\npartitions: 1\nkey: k\nvalue: v\n", "role must be"),
        ("name: x\nrole: inbound\npartitions: 0\nkey: k\nvalue: v\n", "positive integer"),
        ("name: x\nrole: inbound\npartitions: 1\nkey: k\nvalue: v\nextra: 1\n", "unknown field"),
        ("- a list\n", "expected a mapping"),
        ("name: [unclosed\n", "not valid YAML"),
    ],
)
def test_bad_declarations_are_refused(tmp_path: Path, text: str, error: str) -> None:
    (tmp_path / "x.yaml").write_text(text)
    with pytest.raises(t.TopicDeclarationError, match=error):
        t.load(tmp_path)


def test_a_topic_declared_twice_is_refused(tmp_path: Path) -> None:
    spec = "name: x\nrole: inbound\npartitions: 1\nkey: k\nvalue: v\n"
    (tmp_path / "a.yaml").write_text(spec)
    (tmp_path / "b.yaml").write_text(spec)
    with pytest.raises(t.TopicDeclarationError, match="declared twice"):
        t.load(tmp_path)


def _spec(**config: str) -> t.TopicSpec:
    return t.TopicSpec("x", "internal", 1, "k", "v", config=dict(config))


@pytest.mark.parametrize(
    ("config", "days"),
    [
        ({}, 14.0),  # Kafka's defaults: 7 days' retention, 7-day segments
        ({"retention.ms": "86400000", "segment.ms": "3600000"}, 1 + 1 / 24),
        ({"retention.ms": "-1"}, None),  # kept for ever
        ({"cleanup.policy": "compact"}, None),  # no max.compaction.lag.ms: no bound
        (
            {"cleanup.policy": "compact", "segment.ms": "86400000",
             "max.compaction.lag.ms": "86400000"},
            3.0,  # a day to roll, a day to compact, tombstones a day (the default)
        ),
        ({"cleanup.policy": "compact,delete", "retention.ms": "3600000"}, 7 + 1 / 24),
    ],
)  # fmt: skip
def test_how_long_a_topic_keeps_a_record(config: dict[str, str], days: float | None) -> None:
    kept = t.kept_at_most(_spec(**config))
    assert (None if kept is None else kept.total_seconds() / 86400) == days


def test_the_declared_topics_hold_no_copy_longer_than_31_days() -> None:
    specs = t.load(REPO_ROOT / "topics")
    longest = t.copies_gone_within(specs)
    assert longest is not None
    assert longest.total_seconds() / 86400 == 31
    assert t.copies_gone_within({**specs, "x": _spec(**{"retention.ms": "-1"})}) is None
