"""The Grafana dashboard and provisioning files: stable uid, datasource variable, panels."""

from __future__ import annotations

import yaml

from tests.support.observability import ROOT, dashboard, dashboard_queries, panels

PROVISIONING = ROOT / "deploy/grafana/provisioning"


def test_the_dashboard_has_a_stable_uid_and_a_datasource_variable() -> None:
    dash = dashboard()
    assert dash["uid"] == "touchpoint-processor"
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"


def test_every_panel_and_query_uses_the_datasource_variable() -> None:
    for panel in panels(dashboard()):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
            assert target["expr"].strip(), panel["title"]


def test_panels_cover_funnel_throughput_dead_letters_actions_timers_latency_and_lag() -> None:
    by_metric = "\n".join(e for _, e in dashboard_queries())
    for metric in (
        "touchpoint_customers",
        "touchpoint_events_received_total",
        "touchpoint_deadletters_total",
        "touchpoint_actions_total",
        "touchpoint_actions_suppressed_total",
        "touchpoint_timers_pending",
        "touchpoint_timer_lateness_seconds_bucket",
        "touchpoint_event_latency_seconds_bucket",
        "touchpoint_action_latency_seconds_bucket",
        "touchpoint_consumer_lag_messages",
    ):
        assert metric in by_metric, metric


def test_panel_ids_are_unique_and_panels_do_not_overlap() -> None:
    all_panels = panels(dashboard())
    ids = [p["id"] for p in all_panels]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for p in all_panels:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24, p["title"]
        mine = {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }
        assert not cells & mine, p["title"]
        cells |= mine


def test_provisioning_points_at_prometheus_and_the_dashboard_folder() -> None:
    sources = yaml.safe_load((PROVISIONING / "datasources/prometheus.yaml").read_text())
    (source,) = sources["datasources"]
    assert source["type"] == "prometheus"
    assert source["url"].startswith("http")
    providers = yaml.safe_load((PROVISIONING / "dashboards/touchpoint.yaml").read_text())
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"].startswith("/")


def test_the_docs_show_the_dashboard_picture_and_say_it_is_not_grafana() -> None:
    # The picture `make dashboard-png` draws (tests/deploy/dashboard_render.py): the dashboard's
    # queries on a real Prometheus, which the docs must not pass off as Grafana's own.
    docs = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    assert "](../deploy/grafana/dashboard.png)" in docs
    after = docs.split("](../deploy/grafana/dashboard.png)", 1)[1][:600]
    assert "*Not a Grafana screenshot.*" in after
    assert "rendering of the\ndashboard's queries" in after
    head = (ROOT / "deploy/grafana/dashboard.png").read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    assert int.from_bytes(head[16:20], "big") == 1600
