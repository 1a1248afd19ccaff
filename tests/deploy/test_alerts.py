"""The alert rules: promtool checks them and runs their unit tests; every rule is complete."""

from __future__ import annotations

import re
import subprocess

from tests.support.observability import ALERT_TESTS, ALERTS, ROOT, alert_rules
from tests.support.system_tools import require_tool

REQUIRED = {
    "TouchpointConsumerLagGrowing",
    "TouchpointDeadLetterRate",
    "TouchpointNoActions",
    "TouchpointWorkerDown",
    "TouchpointTimersLate",
}


def _promtool(*args: str) -> str:
    promtool = require_tool("promtool")
    done = subprocess.run(
        [promtool, *args], cwd=ALERTS.parent, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_promtool_accepts_the_rules() -> None:
    assert "SUCCESS: 6 rules found" in _promtool("check", "rules", ALERTS.name)


def test_promtool_rule_unit_tests_pass() -> None:
    assert "SUCCESS" in _promtool("test", "rules", ALERT_TESTS.name)


def test_promtool_accepts_the_sample_configuration() -> None:
    _promtool("check", "config", str(ROOT / "deploy/prometheus/prometheus.yml"))


def test_every_rule_has_for_severity_summary_and_description() -> None:
    rules = alert_rules()
    assert {r["alert"] for r in rules} >= REQUIRED
    for rule in rules:
        assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"].strip(), rule["alert"]
        assert len(rule["annotations"]["description"]) > 40, rule["alert"]


def test_every_rule_links_its_runbook_section() -> None:
    runbook = (ROOT / "docs" / "runbook.md").read_text(encoding="utf-8")
    sections = {h.lower() for h in re.findall(r"^## (\w+)$", runbook, re.M)}
    for rule in alert_rules():
        url = rule["annotations"]["runbook_url"]
        assert url == f"docs/runbook.md#{rule['alert'].lower()}", rule["alert"]
        assert url.partition("#")[2] in sections, f"docs/runbook.md has no section {url}"
    assert sections == {r["alert"].lower() for r in alert_rules()}


def test_every_rule_has_a_unit_test() -> None:
    tested = set(re.findall(r"alertname: (\w+)", ALERT_TESTS.read_text(encoding="utf-8")))
    assert tested == {r["alert"] for r in alert_rules()}
