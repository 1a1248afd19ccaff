"""Every `touchpoint_*` metric name written anywhere in the repository is one the workers export:
the dashboard, the alerts and their unit tests, the generated Kubernetes rules, the README, and
code that reads metrics by name (the demo's summary, the benchmark)."""

from __future__ import annotations

from pathlib import Path

from processor.journey.definition import load_journey
from processor.metrics import Metrics
from processor.settings import DEFAULT_JOURNEY_FILE
from tests.support.observability import ROOT, exported_names, names_in

#: Text files that may name metrics; the bundle itself builds its names from a prefix.
PLACES = ("README.md", "docs", "deploy", "processor", "topics", ".ci", "Makefile")
SUFFIXES = {".md", ".py", ".json", ".yaml", ".yml", ".sh", ""}


def _files() -> list[Path]:
    found: list[Path] = []
    for place in PLACES:
        path = ROOT / place
        candidates = [path] if path.is_file() else sorted(path.rglob("*"))
        found += [
            p
            for p in candidates
            if p.is_file() and p.suffix in SUFFIXES and "__pycache__" not in p.parts
        ]
    return found


def test_every_metric_name_used_anywhere_is_exported() -> None:
    stages = tuple(load_journey(DEFAULT_JOURNEY_FILE).stages)
    exported = exported_names(Metrics.create(stages=stages).registry)
    used: dict[str, set[str]] = {}
    for path in _files():
        names = names_in(path.read_text(encoding="utf-8", errors="replace"))
        if names:
            used[str(path.relative_to(ROOT))] = names
    # The places that must name metrics do.
    for must in ("docs/operations.md", "deploy/prometheus/alerts.yml",
                 "deploy/grafana/dashboards/touchpoint.json",
                 "deploy/k8s/generated/prometheus-rule.yaml"):  # fmt: skip
        assert used.get(must), must
    unknown = {where: sorted(names - exported) for where, names in used.items() if names - exported}
    assert not unknown, unknown
