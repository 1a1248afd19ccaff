"""The metrics bundle, the per-stage counts behind `touchpoint_customers`, and metric names."""

from __future__ import annotations

import random
from collections import Counter
from types import SimpleNamespace

import pytest

from processor.journey.definition import load_journey
from processor.metrics import Metrics
from processor.settings import DEFAULT_JOURNEY_FILE
from processor.stream.observe import (
    Observer,
    StageCounts,
    counter_total,
    publish_moved,
    publish_stages,
)
from processor.web.status import rates
from tests.support.observability import as_bool, exported_names, used_metric_names
from tests.support.worker import metric_values

STAGES = tuple(load_journey(DEFAULT_JOURNEY_FILE).stages)
#: Every label the bundle may use: each has a bounded set of values, none identifies a person.
BOUNDED_LABELS = {
    "source", "channel", "type", "kind", "from_stage", "to_stage", "stage", "action",
    "template", "rule", "reason", "topic", "partition", "version",
}  # fmt: skip


def _text(m: Metrics) -> str:
    from prometheus_client import generate_latest

    return generate_latest(m.registry).decode()


#: The standard collectors' families (prometheus_client's own names and labels).
STANDARD = ("process_", "python_")


def test_the_bundle_uses_base_units_and_bounded_labels() -> None:
    m = Metrics.create(stages=STAGES)
    for family in m.registry.collect():
        if family.name.startswith(STANDARD):
            continue
        assert family.name.startswith("touchpoint_"), family.name
        if family.type == "histogram":
            assert family.name.endswith("_seconds"), family.name
        for sample in family.samples:
            assert set(sample.labels) - {"le"} <= BOUNDED_LABELS, (family.name, sample.labels)


def test_the_standard_process_and_python_series_are_exported() -> None:
    text = _text(Metrics.create(stages=STAGES))
    for name in ("process_resident_memory_bytes", "process_cpu_seconds_total",
                 "process_open_fds", "python_info", "python_gc_collections_total"):  # fmt: skip
        assert metric_values(text, name), name


def test_labels_are_pre_initialised_so_dashboards_show_zeros() -> None:
    text = _text(Metrics.create(stages=STAGES))
    customers = metric_values(text, "touchpoint_customers")
    assert {dict(k)["stage"]: v for k, v in customers.items()} == dict.fromkeys(STAGES, 0.0)
    latency = metric_values(text, "touchpoint_event_latency_seconds_count")
    assert {dict(k)["channel"] for k in latency} == {"web", "email", "store"}
    assert metric_values(text, "touchpoint_action_latency_seconds_count") == {(): 0.0}


def test_the_journey_s_actions_are_pre_initialised() -> None:
    m = Metrics.create(stages=STAGES)
    m.expect([("send_email", "welcome")])
    assert metric_values(_text(m), "touchpoint_actions_total") == {
        (("action", "send_email"), ("template", "welcome")): 0.0
    }


def test_two_bundles_never_share_a_registry() -> None:
    a, b = Metrics.create(), Metrics.create()
    a.timers_fired.inc()
    assert counter_total(a.timers_fired) == 1
    assert counter_total(b.timers_fired) == 0


def test_every_metric_name_used_in_dashboard_alerts_and_readme_exists() -> None:
    exported = exported_names(Metrics.create(stages=STAGES).registry)
    for where, names in used_metric_names().items():
        assert names, where
        assert names <= exported, (where, sorted(names - exported))


def test_stage_counts_follow_moves_on_counted_partitions_only() -> None:
    counts = StageCounts()
    assert counts.move(0, None, "awareness") is False  # partition 0 is not counted yet
    counts.finish(counts.begin(), {0: Counter(awareness=2)}, {0})
    assert counts.move(0, "awareness", "purchase") is True
    assert counts.move(0, "purchase", "purchase") is False
    assert counts.move(0, "purchase", None) is True  # erased or merged away
    assert counts.totals() == Counter(awareness=1)


def test_a_recount_replays_moves_made_while_it_scanned() -> None:
    counts = StageCounts()
    generation = counts.begin()
    # The snapshot saw one person in awareness on partition 1; while the scan ran, that person
    # moved on and a new one arrived (the agent runs between the scan's yields).
    counts.move(1, "awareness", "consideration")
    counts.move(1, None, "awareness")
    counts.move(5, None, "awareness")  # a partition the recount does not own
    assert counts.finish(generation, {1: Counter(awareness=1)}, {1})
    assert counts.totals() == Counter(consideration=1, awareness=1)
    assert counts.partitions() == {1}


def test_a_newer_recount_supersedes_an_older_one_still_running() -> None:
    counts = StageCounts()
    old = counts.begin()
    new = counts.begin()
    assert counts.finish(old, {0: Counter(awareness=9)}, {0}) is False
    assert counts.finish(new, {2: Counter(purchase=3)}, {2}) is True
    assert counts.totals() == Counter(purchase=3)


def test_a_lost_partition_stops_being_counted_at_once() -> None:
    counts = StageCounts()
    counts.finish(counts.begin(), {0: Counter(awareness=2), 1: Counter(purchase=4)}, {0, 1})
    counts.keep_only({1, 3})
    assert counts.totals() == Counter(purchase=4)
    assert counts.move(0, "awareness", "purchase") is False  # no longer ours: not counted


def test_the_running_totals_equal_the_sum_of_the_partitions_after_any_moves() -> None:
    rng = random.Random(7)
    counts = StageCounts()
    counts.finish(counts.begin(), {0: Counter(awareness=5), 1: Counter(purchase=2)}, {0, 1})
    for _ in range(500):
        before, after = rng.choice([None, *STAGES]), rng.choice([None, *STAGES])
        counts.move(rng.randrange(3), before, after)  # partition 2 is not counted
        if rng.random() < 0.01:
            counts.keep_only(rng.sample([0, 1], rng.randint(0, 2)))
    expected: Counter[str] = Counter()
    for p in counts.partitions():
        expected.update(counts._by_partition[p])
    assert counts.totals() == expected
    assert all(counts.total(stage) == expected[stage] for stage in STAGES)


def test_a_move_sets_the_gauge_of_both_stages_it_touches() -> None:
    m = Metrics.create(stages=STAGES)
    rt = SimpleNamespace(metrics=m, observer=Observer(), journey=SimpleNamespace(stages=STAGES))
    rt.observer.stages.finish(rt.observer.stages.begin(), {0: Counter(awareness=2)}, {0})
    publish_stages(m, STAGES, rt.observer.stages.totals())
    assert rt.observer.stages.move(0, "awareness", "purchase")
    publish_moved(rt, "awareness", "purchase")  # type: ignore[arg-type]
    got = {dict(k)["stage"]: v for k, v in metric_values(_text(m), "touchpoint_customers").items()}
    assert got == {**dict.fromkeys(STAGES, 0.0), "awareness": 1.0, "purchase": 1.0}


def test_the_gauge_shows_declared_stages_never_below_zero() -> None:
    m = Metrics.create(stages=STAGES)
    publish_stages(m, STAGES, Counter(awareness=3, purchase=-1, unknown=7))
    got = {dict(k)["stage"]: v for k, v in metric_values(_text(m), "touchpoint_customers").items()}
    assert got == {**dict.fromkeys(STAGES, 0.0), "awareness": 3.0}


def test_status_rates_come_from_the_oldest_and_newest_sample() -> None:
    assert rates([(10.0, 1, 1, 1, 1)]) == dict.fromkeys(
        ("consumed", "processed", "actions", "deadletters")
    )
    got = rates([(10.0, 0, 0, 0, 0), (12.0, 5, 4, 1, 1), (20.0, 100, 80, 10, 20)])
    assert got == {"consumed": 10.0, "processed": 8.0, "actions": 1.0, "deadletters": 2.0}


@pytest.mark.parametrize(
    ("expr", "want"),
    [
        ("sum(x) > 0.05", "sum(x) > bool 0.05"),
        ('up{job=~"(.+/)?t", a!="b"} == 0', 'up{job=~"(.+/)?t", a!="b"} == bool 0'),
        ("a > 1000\nand b >= 0", "a > bool 1000\nand b >= bool 0"),
        ("a > bool 1", "a > bool 1"),
    ],
)
def test_alert_expressions_turn_into_queries_that_always_answer(expr: str, want: str) -> None:
    assert as_bool(expr) == want


def test_a_remembered_child_counts_where_labels_would() -> None:
    m = Metrics.create(stages=STAGES)
    web = m.child(m.events_processed, "web")
    assert m.child(m.events_processed, "web") is web is m.events_processed.labels("web")
    web.inc()
    m.child(m.events_processed, "email").inc(2)
    m.child(m.transitions, "none", STAGES[0]).inc()
    text = _text(m)
    assert metric_values(text, "touchpoint_events_processed_total") == {
        (("channel", "web"),): 1.0,
        (("channel", "email"),): 2.0,
        (("channel", "store"),): 0.0,
    }
    assert (
        metric_values(text, "touchpoint_transitions_total")[
            (("from_stage", "none"), ("to_stage", STAGES[0]))
        ]
        == 1.0
    )
