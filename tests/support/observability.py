"""The queries of the dashboard and the alert rules, and the metric names that docs mention."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import CollectorRegistry

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy/grafana/dashboards/touchpoint.json"
ALERTS = ROOT / "deploy/prometheus/alerts.yml"
ALERT_TESTS = ROOT / "deploy/prometheus/alerts.test.yml"
#: The documentation that names metrics (the metrics table, the runbook).
DOCS = (ROOT / "docs" / "operations.md", ROOT / "docs" / "runbook.md")

METRIC_NAME = re.compile(r"\btouchpoint_[a-z0-9_]*[a-z0-9]\b")
#: Grafana's macros, with windows long enough to hold a whole test's traffic (scraped every 1 s).
GRAFANA_MACROS = {"$__rate_interval": "2m", "$__interval": "5s", "$__range": "5m"}
_COMPARISON = re.compile(r"(==|!=|>=|<=|>|<)(?!\s*bool\b)")


def dashboard() -> dict[str, Any]:
    """The dashboard JSON."""
    data: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return data


def panels(dash: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, those inside collapsed rows included."""
    out: list[dict[str, Any]] = []
    for panel in dash["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL expression) for every target of every panel."""
    return [
        (p["title"], t["expr"])
        for p in panels(dashboard())
        for t in p.get("targets", [])
        if "expr" in t
    ]


def alert_rules() -> list[dict[str, Any]]:
    """Every alerting rule of alerts.yml."""
    doc = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    return [r for g in doc["groups"] for r in g["rules"] if "alert" in r]


def with_macros(expr: str) -> str:
    """A dashboard expression as Prometheus itself can run it."""
    for macro, value in GRAFANA_MACROS.items():
        expr = expr.replace(macro, value)
    return expr


def as_bool(expr: str) -> str:
    """An alert expression that returns a series whether or not the alert's condition holds:
    every comparison outside label matchers gets the `bool` modifier (0 or 1 instead of a filter).
    """
    out: list[str] = []
    depth = 0
    quote: str | None = None
    i = 0
    while i < len(expr):
        c = expr[i]
        if quote:
            out.append(c)
            if c == "\\":
                out.append(expr[i + 1])
                i += 1
            elif c == quote:
                quote = None
        elif c in "\"'`":
            quote = c
            out.append(c)
        elif c == "{":
            depth += 1
            out.append(c)
        elif c == "}":
            depth -= 1
            out.append(c)
        elif depth == 0 and (m := _COMPARISON.match(expr, i)):
            out.append(f"{m.group(1)} bool")
            i = m.end()
            continue
        else:
            out.append(c)
        i += 1
    return "".join(out)


def names_in(text: str) -> set[str]:
    """Every `touchpoint_*` metric name in a text."""
    return set(METRIC_NAME.findall(text))


def used_metric_names() -> dict[str, set[str]]:
    """Metric names used by the dashboard, the alerts and the docs, by file."""
    return {
        "dashboard": names_in("\n".join(e for _, e in dashboard_queries())),
        "alerts": names_in(ALERTS.read_text(encoding="utf-8")),
        "docs": names_in("\n".join(p.read_text(encoding="utf-8") for p in DOCS)),
    }


def exported_names(registry: CollectorRegistry) -> set[str]:
    """Every sample name the registry can export, whether or not a labelled child exists yet
    (and a histogram's own name, which documentation uses for the whole family)."""
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("", "_bucket", "_count", "_sum", "_created"),
        "info": ("_info",),
        "gauge": ("",),
        "summary": ("", "_count", "_sum", "_created"),
    }
    return {
        family.name + suffix
        for family in registry.collect()
        for suffix in suffixes.get(family.type, ("",))
    }
