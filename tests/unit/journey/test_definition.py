"""The journey file: durations, validation errors, compiled conditions and params, the CLI."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from processor.cli import main
from processor.journey.conditions import Condition, Facts
from processor.journey.definition import JourneyFileError, load_journey
from processor.journey.params import ParamContext, Params
from processor.journey.state import Cart, CustomerState
from processor.settings import DEFAULT_JOURNEY_FILE
from tests.unit.journey.support import LIFECYCLE


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("45s", 45), ("1h", 3600), ("7d", 604800), ("1h30m", 5400), ("250ms", 0.25), ("2w", 1209600)],
)
def test_durations_are_written_with_units(text: str, seconds: float) -> None:
    from processor.journey.yamlfile import parse_duration

    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("bad", ["45", "1 hour", "h", "", "-1h", 3600, None])
def test_a_duration_without_unit_is_refused(bad: Any) -> None:
    from processor.journey.yamlfile import parse_duration

    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(bad)


def _shipped() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(DEFAULT_JOURNEY_FILE.read_text())
    # PyYAML 1.1 reads `on:` as True; the journey loader does not. Put the keys back.
    for item in [
        *data["transitions"],
        *data["rules"],
        *(s for r in data["rules"] for s in r.get("steps", [])),
    ]:
        if True in item:
            item["on"] = item.pop(True)
    return data


def _broken(tmp_path: Path, change: Any) -> str:
    data = _shipped()
    change(data)
    path = tmp_path / "journey.yaml"
    path.write_text(yaml.safe_dump(data).replace("'on':", '"on":'))
    with pytest.raises(JourneyFileError) as info:
        load_journey(path)
    # The line numbers of a dumped file are tested on the shipped file's text below.
    return re.sub(r"^FILE:\d+:", "FILE:", str(info.value).replace(str(path), "FILE"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["rules"][1].update(wait="1 hour"),
         "FILE: rules.1.wait: '1 hour' is not a duration such as 45s, 1h or 7d"),
        (lambda d: d["rules"][0].update(action="send_emial"),
         "FILE: rules.0.action: unknown value 'send_emial' (did you mean 'send_email'?)"),
        (lambda d: d["rules"][0].update(action="mail"),
         "FILE: rules.0.action: Input should be 'send_email', 'send_sms', 'send_push', "
         "'issue_coupon', 'retarget_ad', 'create_support_task' or 'tag_customer'"),
        (lambda d: d["transitions"][4].update({"if": {"nps": {"gte=": 9}}}),
         "FILE: transitions.4.if: nps: unknown operator 'gte=' (use eq, ne, lt, lte, gt, gte, in)"),
        (lambda d: d["rules"][5].update(params={"order": "{order.id}"}),
         "FILE: rules.5.params: params.order: unknown reference {order.id}"),
        (lambda d: d["transitions"][0].update(to="delighted"),
         "FILE: transitions.0.to: unknown stage 'delighted'"),
        (lambda d: d["transitions"][1]["from"].append("considering"),
         "FILE: transitions.1.from.2: unknown stage 'considering' (did you mean 'consideration'?)"),
        (lambda d: d["rules"][9]["steps"][0].update(on_enter=["purchased"], on=[]),
         "FILE: rules.9.steps.0.on_enter.0: unknown stage 'purchased' (did you mean 'purchase'?)"),
        (lambda d: d["rules"][1].update(on=["cart_ad"]),
         "FILE: rules.1.on.0: unknown event type 'cart_ad' (did you mean 'cart_add'?)"),
        (lambda d: d["rules"][1].update(wiat="1h"),
         "FILE: rules.1.wiat: unknown key 'wiat' (did you mean 'wait'?)"),
        (lambda d: d["rules"][0].update(on_enter=["purchase"]),
         "FILE: rules.0: 'welcome': needs exactly one of on, on_enter or after"),
        (lambda d: d["rules"][0].pop("template"),
         "FILE: rules.0: 'welcome': an action needs a channel and a template"),
        (lambda d: d["rules"][9]["steps"][1].update(name="detractor_followup"),
         "FILE: rules: step names must be unique, repeated: detractor_followup"),
        (lambda d: d["policies"].update(timezone="Mars/Olympus"),
         "FILE: policies.timezone: unknown IANA time zone 'Mars/Olympus'"),
        (lambda d: d["policies"].pop("stale_after"), "FILE: policies.stale_after: Field required"),
        (lambda d: d["rules"][11].update(limit="twice"),
         "FILE: rules.11.limit.literal['always','once','once_per_key']: Input should be"),
    ],
)  # fmt: skip
def test_errors_name_the_file_the_path_and_the_problem(
    tmp_path: Path, change: Any, message: str
) -> None:
    assert _broken(tmp_path, change).startswith(message)


def test_the_shipped_journey_has_every_stage_and_rule() -> None:
    assert list(LIFECYCLE.stages) == [
        "awareness", "consideration", "purchase", "retention", "advocacy", "lapsed", "erased",
    ]  # fmt: skip
    assert [r.name for r in LIFECYCLE.rules] == [
        "welcome", "abandoned_cart", "browse_retarget", "onboarding", "review_request",
        "survey_reward", "loyalty_reward", "referral_invite", "service_recovery", "winback",
        "reengagement", "interest_tag", "store_followup",
    ]  # fmt: skip


def test_on_stays_a_word_and_yes_no_are_not_booleans(tmp_path: Path) -> None:
    text = DEFAULT_JOURNEY_FILE.read_text().replace("journey: lifecycle", "journey: on")
    path = tmp_path / "j.yaml"
    path.write_text(text)
    assert load_journey(path).journey == "on"


def _facts(props: dict[str, Any], **state: Any) -> Facts:
    s = CustomerState(customer_id="C-1", stage=state.pop("stage", "purchase"), stage_since=0.0)
    for k, v in state.items():
        setattr(s, k, v)
    return Facts(s, props, 100 * 86400.0, lambda ch: s.consent.get(ch, False))


@pytest.mark.parametrize(
    ("spec", "props", "state", "expected"),
    [
        ({"nps": {"lte": 6}}, {"nps": 6}, {}, True),
        ({"nps": {"lte": 6}}, {"nps": 7}, {}, False),
        ({"nps": {"lte": 6}}, {}, {}, False),
        ({"nps": {"lte": 6}}, {"nps": "six"}, {}, False),
        ({"rating": {"eq": 5}}, {"rating": 5}, {}, True),
        ({"rating": 5}, {"rating": 4}, {}, False),
        ({"bounce_type": "hard"}, {"bounce_type": "hard"}, {}, True),
        ({"bounce_type": ["hard", "soft"]}, {"bounce_type": "soft"}, {}, True),
        ({"consent": "email"}, {}, {"consent": {"email": True}}, True),
        ({"consent": "email"}, {}, {"consent": {"email": False}}, False),
        ({"stage": "lapsed"}, {}, {"stage": "lapsed"}, True),
        ({"stage": ["purchase", "retention"]}, {}, {"stage": "lapsed"}, False),
        ({"purchases": {"gte": 3}}, {}, {"purchases": 3}, True),
        ({"any": [{"purchases": {"gte": 3}}, {"lifetime_value": {"gte": 500}}]}, {},
         {"purchases": 1, "lifetime_value": 500.0}, True),
        ({"not": {"nps": {"gt": 8}}}, {"nps": 9}, {}, False),
        ({"nps": {"gte": 0, "lt": 7}}, {"nps": 3}, {}, True),
        ({"__import__": "os"}, {}, {}, False),  # a property name, never code
        ({"count": {"of": "product_view", "same": "category", "within": "30d", "gte": 3}},
         {"category": "mugs"},
         {"recent": [("product_view", {"category": "mugs"}, d * 86400.0) for d in (60, 80, 99)]},
         False),
        ({"count": {"of": "product_view", "same": "category", "within": "30d", "gte": 3}},
         {"category": "mugs"},
         {"recent": [("product_view", {"category": "mugs"}, d * 86400.0) for d in (71, 80, 99)]},
         True),
        ({"touched": {"channels": ["web", "email"], "within": "14d"}}, {},
         {"touches": [("store", 99 * 86400.0), ("web", 85 * 86400.0)]}, False),
        ({"touched": {"channels": ["web", "email"], "within": "14d"}}, {},
         {"touches": [("email", 87 * 86400.0)]}, True),
    ],
)  # fmt: skip
def test_conditions_compile_to_plain_functions(
    spec: Any, props: dict[str, Any], state: dict[str, Any], expected: bool
) -> None:
    assert Condition.compile(spec)(_facts(props, **state)) is expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"nps": {"lte": 6, "about": 3}}, "nps: unknown operator 'about'"),
        ({"nps": {}}, "nps: needs an operator"),
        ({"any": []}, "any: needs a non-empty list"),
        ({"count": {"of": "product_view"}}, "count: needs `of`"),
        ({"count": {"of": "product_view", "within": "30 days", "gte": 1}},
         "'30 days' is not a duration"),
        ("nps <= 6", "condition: expected a mapping"),
    ],
)  # fmt: skip
def test_bad_conditions_are_refused_at_load(spec: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("`", "`")):
        Condition.compile(spec)


def test_params_resolve_references() -> None:
    state = CustomerState(customer_id="C-1", stage="consideration", stage_since=0.0)
    state.cart = Cart("e1", {"P-9": 12.5, "P-3": 10.0}, "EUR")
    params = Params.validate(
        {
            "product_ids": "{cart.product_ids}",
            "cart_value": "{cart.value}",
            "tag": "interest:{key}",
            "order": "{event.order_id}",
            "fixed": [1, 2],
        }
    )
    got = params(ParamContext(state, {"order_id": "O-1"}, "mugs", "WI-X", 0.0))
    assert got == {
        "product_ids": ["P-9", "P-3"],
        "cart_value": 22.5,
        "tag": "interest:mugs",
        "order": "O-1",
        "fixed": [1, 2],
    }
    assert params.event_props == ("order_id",)


def test_validate_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["journey", "validate", str(DEFAULT_JOURNEY_FILE)]) == 0
    assert capsys.readouterr().out == (
        f"{DEFAULT_JOURNEY_FILE}: journey 'lifecycle' is valid: 7 stages, 8 transitions, 13 rules\n"
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text(DEFAULT_JOURNEY_FILE.read_text().replace("wait: 1h", "wait: soon"))
    assert main(["journey", "validate", str(bad)]) == 1
    line = _line_of(bad, "wait: soon")
    assert (
        capsys.readouterr().err
        == f"{bad}:{line}: rules.1.wait: 'soon' is not a duration such as 45s, 1h or 7d\n"
    )


def _line_of(path: Path, text: str) -> int:
    (number,) = [n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line]
    return number


def test_errors_give_the_line_of_each_problem_in_the_file(tmp_path: Path) -> None:
    text = DEFAULT_JOURNEY_FILE.read_text()
    text = text.replace("    to: consideration\n", "    to: considration\n", 1)
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    with pytest.raises(JourneyFileError) as info:
        load_journey(bad)
    line = _line_of(bad, "to: considration")
    assert str(info.value) == (
        f"{bad}:{line}: transitions.0.to: unknown stage 'considration' "
        "(did you mean 'consideration'?)"
    )
    bad.write_text(
        text.replace("    to: considration\n", "    to: consideration\n").replace(
            "  - name: abandoned_cart\n", "  - name: abandoned_cart\n    wiat: 1h\n", 1
        )
    )
    with pytest.raises(JourneyFileError) as info:
        load_journey(bad)
    line = _line_of(bad, "wiat: 1h")
    assert (
        str(info.value) == f"{bad}:{line}: rules.1.wiat: unknown key 'wiat' (did you mean 'wait'?)"
    )
    bad.write_text("journey: x\n  stages: [\n")
    with pytest.raises(JourneyFileError, match=rf"^{re.escape(str(bad))}:2: not valid YAML: "):
        load_journey(bad)


def test_graph_cli_draws_every_stage_transition_and_rule(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["journey", "graph", str(DEFAULT_JOURNEY_FILE)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("flowchart LR\n  start((start)) --> awareness\n")
    for stage in LIFECYCLE.stages:
        assert f'  {stage}(["{stage}"])' in out
    assert '  purchase -->|"stays_a_customer: 30d after entry"| retention' in out
    assert '  advocacy -->|"lapses: 90d after purchase"| lapsed' in out
    for step in LIFECYCLE.steps:
        assert f"    r_{step.name}{{{{" in out
    assert '  lapsed -.->|"on entry"| r_winback' in out
    assert '  r_winback -.->|"then"| r_winback_last_chance' in out
