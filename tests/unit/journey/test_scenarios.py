"""The shipped scenario files, run through `touchpoint journey test` as an operator would."""

from __future__ import annotations

from pathlib import Path

import pytest

from processor.cli import main
from processor.settings import DEFAULT_JOURNEY_FILE
from tests.unit.journey.support import LIFECYCLE

SCENARIOS = Path(__file__).parents[2] / "scenarios"
FAILING = Path(__file__).parent / "fixtures" / "failing_scenario.yaml"

#: Which scenarios cover each rule (fires, does not fire, cancelled) and each policy.
COVERAGE = {
    "welcome": ["welcome_fires_on_signup_with_consent", "welcome_suppressed_without_consent",
                "welcome_once"],
    "abandoned_cart": ["abandoned_cart_fires", "abandoned_cart_cancelled_by_purchase",
                       "abandoned_cart_once_per_cart", "abandoned_cart_no_consent"],
    "browse_retarget": ["browse_retarget_fires", "browse_retarget_cancelled_by_cart_add",
                        "browse_retarget_once_per_7_days"],
    "onboarding": ["onboarding_series", "onboarding_transactional_without_consent",
                   "onboarding_tips_cancelled_by_unsubscribe",
                   "onboarding_not_to_hard_bounced_address"],
    "review_request": ["review_request_fires", "review_request_cancelled_by_review",
                       "review_request_cancelled_by_any_review"],
    "survey_reward": ["survey_reward_once_per_90_days"],
    "loyalty_reward": ["loyalty_reward_third_purchase", "loyalty_reward_lifetime_value",
                       "loyalty_reward_lifetime_value_reached"],
    "referral_invite": ["referral_invite_on_advocacy", "referral_invite_not_for_passives"],
    "service_recovery": ["service_recovery"],
    "winback": ["winback_lapsed", "winback_cancelled_by_purchase"],
    "reengagement": ["reengagement", "reengagement_not_after_open",
                     "reengagement_tag_cancelled_by_open",
                     "reengagement_click_before_its_delivery"],
    "interest_tag": ["interest_tag", "interest_tag_not_spread_out"],
    "store_followup": ["store_followup_cross_channel", "store_followup_store_only"],
    "stages": ["stage_retention_after_30_days", "stage_never_backwards",
               "stage_lapse_clock_restarts", "winback_cancelled_by_purchase"],
    "policy:consent": ["consent_unsubscribe_and_opt_in_again",
                       "consent_complaint_blocks_until_a_newer_opt_in",
                       "consent_an_older_opt_in_arriving_late_changes_nothing",
                       "consent_soft_bounce_keeps_consent",
                       "consent_soft_opt_in_for_customers"],
    "policy:frequency_cap": ["cap_per_local_day", "cap_rolling_7_days",
                             "cap_uses_customer_timezone"],
    "policy:quiet_hours": ["quiet_hours_evening", "quiet_hours_early_morning",
                           "quiet_hours_dst_spring_forward", "quiet_hours_dst_fall_back",
                           "quiet_hours_customer_timezone"],
    "policy:staleness": ["stale_backfilled_events"],
    "policy:duplicates": ["duplicates"],
    "policy:erasure": ["erasure", "erasure_leaves_nothing"],
}  # fmt: skip


def test_every_rule_and_policy_has_scenarios() -> None:
    assert {r.name for r in LIFECYCLE.rules} <= set(COVERAGE)
    named = {name for names in COVERAGE.values() for name in names}
    shipped = {p.stem for p in SCENARIOS.glob("*.yaml")}
    assert named == shipped


def test_every_shipped_scenario_passes(capsys: pytest.CaptureFixture[str]) -> None:
    files = sorted(SCENARIOS.glob("*.yaml"))
    code = main(["journey", "test", *map(str, files)])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0, "\n".join(lines)
    assert len(lines) == len(files) + 1
    assert all(line.startswith("PASS ") for line in lines[:-1])
    assert lines[-1] == f"{len(files)} passed, 0 failed"


def test_a_failing_scenario_prints_a_unified_diff_and_exits_1(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["journey", "test", str(FAILING)])
    out = capsys.readouterr().out.splitlines()
    assert code == 1
    assert out[0].startswith(f"FAIL {FAILING}: a scenario that must fail (3 steps,")
    assert out[1:] == [
        f"--- {FAILING} (expected)",
        "+++ actual",
        "@@ -1,6 +1,6 @@",
        "-stage: purchase",
        "+stage: consideration",
        " actions:",
        " - rule: welcome",
        "   send_after: '2026-11-23T10:00:00Z'",
        " - rule: abandoned_cart",
        "-  send_after: '2026-11-23T12:00:00Z'",
        "+  send_after: '2026-11-23T11:01:00Z'",
        "0 passed, 1 failed",
    ]


def test_a_directory_runs_every_scenario_in_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["journey", "test", str(FAILING.parent)]) == 1
    assert capsys.readouterr().out.splitlines()[-1] == "0 passed, 1 failed"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: x\nstart: 2026-11-23T10:00:00Z\nsteps: []\nexpect: {}\nbogus: 1\n",
         "bogus: Extra inputs are not permitted"),
        ("name: x\nstart: 2026-11-23T10:00:00\nsteps: []\nexpect: {}\n",
         "start: Input should have timezone info"),
        ("name: x\nstart: 2026-11-23T10:00:00Z\nsteps: [{event: teleport}]\nexpect: {}\n",
         "steps.0.event.event: Input should be"),
        ("name: x\nstart: 2026-11-23T10:00:00Z\nsteps: [{event: cart_add}]\nexpect: {}\n",
         "steps.0: properties.product_id: Field required"),
        ("name: x\nstart: 2026-11-23T10:00:00Z\n"
         "steps: [{at: +1h, event: login}, {at: +0s, event: login}]\nexpect: {}\n",
         "steps.1.at: 2026-11-23T10:00:00Z is before 2026-11-23T11:00:00Z"),
        ("name: x\nstart: 2026-11-23T10:00:00Z\n"
         "durations: {rules.nope.wait: 1s}\nsteps: []\nexpect: {}\n",
         "durations.rules.nope.wait: no item named 'nope'"),
    ],
)  # fmt: skip
def test_a_broken_scenario_is_an_error_naming_file_and_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    assert main(["journey", "test", str(path)]) == 1
    out = capsys.readouterr().out
    assert out.startswith(f"ERROR {path}: {path}: ")
    assert message in out


def test_a_scenario_may_name_its_journey_and_shorten_durations(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from processor.settings import DEFAULT_JOURNEY_FILE

    text = DEFAULT_JOURNEY_FILE.read_text().replace("wait: 1h ", "wait: 10s ")
    (tmp_path / "fast.yaml").write_text(text)
    scenario = """\
name: seconds instead of hours
journey: fast.yaml
durations:
  rules.onboarding.steps.onboarding_tips.after: 20s
  policies.frequency_caps.per_local_day: 3
start: "2026-11-23T10:00:00Z"
steps:
  - {event: newsletter_subscribe}
  - {at: +1s, event: cart_add, id: c1, properties: {product_id: P-1}}
  - {at: +5s, event: order_placed, id: o1, properties: {order_id: O-1, value: 5}}
  - {at: +6s, event: cart_add, id: c2, properties: {product_id: P-2}}
  - advance: 30s
expect:
  actions:
    - {template: welcome, send_after: +0s}
    - {template: order_welcome, send_after: +5s}
    - {template: cart_reminder, trigger_event_id: c2, send_after: +16s}
    - {template: onboarding_tips, trigger_event_id: o1, send_after: +25s}
"""
    (tmp_path / "scenario.yaml").write_text(scenario)
    assert main(["journey", "test", str(tmp_path / "scenario.yaml")]) == 0, capsys.readouterr()


def test_scenarios_run_against_the_configured_journey(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    scenario = sorted(SCENARIOS.glob("*.yaml"))[0]
    broken = tmp_path / "broken.yaml"
    broken.write_text(DEFAULT_JOURNEY_FILE.read_text().replace("wait: 1h", "wait: soon"))
    monkeypatch.setenv("TOUCHPOINT_JOURNEY_FILE", str(broken))
    assert main(["journey", "test", str(scenario)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"ERROR {scenario}: {broken}:"), out
    assert "rules.1.wait: 'soon' is not a duration" in out[0]
    assert out[-1] == "0 passed, 1 failed"
    monkeypatch.delenv("TOUCHPOINT_JOURNEY_FILE")
    assert main(["journey", "test", "--journey", str(broken), str(scenario)]) == 1
    assert capsys.readouterr().out.splitlines()[-1] == "0 passed, 1 failed"
    assert main(["journey", "test", "--journey", str(DEFAULT_JOURNEY_FILE), str(scenario)]) == 0
    assert main(["journey", "validate", str(broken)]) == 1
    assert main(["journey", "validate"]) == 0
