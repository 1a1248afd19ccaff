"""The engine builds its outputs without validating them again (processor/messages.py `made`):
every action and transition of a simulated population must equal its validated self."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field

from processor.decode import Rejection, decode_touchpoint
from processor.identity import graph
from processor.journey.engine import EventInput, Outcome, fire_due, step
from processor.journey.state import CustomerState
from processor.messages import (
    Action,
    ActionChannel,
    ActionKind,
    Transition,
    made,
    output_json,
    to_json,
)
from processor.simulate.generator import SimConfig, generate
from processor.stream.agents.deadletters import CHANNEL_OF_TOPIC

from .support import LIFECYCLE

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
#: After every simulated event: none of them is in the future.
LATER = START + timedelta(days=365)


def _outcomes() -> list[Outcome]:
    states: dict[str, CustomerState | None] = {}
    outs = []
    last = START
    for msg in generate(SimConfig(start=START, customers=400, events=6000, seed=7)):
        channel = CHANNEL_OF_TOPIC.get(msg.topic)
        if channel is None:
            continue
        event = decode_touchpoint(msg.value, channel, LATER, max_bytes=1 << 20)
        if isinstance(event, Rejection):
            continue
        person = graph.key_of(graph.nodes_of(event.identity)[0])
        now = event.occurred_at + timedelta(seconds=1)
        out = step(states.get(person), EventInput.of(event, channel, person), now, LIFECYCLE)
        states[person] = out.state
        outs.append(out)
        last = max(last, now)
    later = last + timedelta(days=90)  # every wait, follow-up and lapse comes due
    outs += [fire_due(state, person, later, LIFECYCLE) for person, state in states.items()]
    return outs


def test_every_action_and_transition_equals_its_validated_self() -> None:
    outs = _outcomes()
    made = [m for out in outs for m in (*out.actions, *out.transitions)]
    kinds = {type(m).__name__ for m in made}
    assert kinds == {"Action", "Transition"}
    assert sum(1 for out in outs for _ in out.actions) > 500
    for m in made:
        checked = type(m).model_validate(m.model_dump())
        assert checked.model_dump() == m.model_dump()
        assert to_json(checked) == to_json(m)
        assert output_json(m) == to_json(m)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text()
    | st.floats(allow_nan=True, allow_infinity=True),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(params=st.dictionaries(st.text(), _JSON, max_size=4), micros=st.integers(0, 999_999))
def test_an_outputs_json_is_pydantics_whatever_its_params(params: dict, micros: int) -> None:
    at = START.replace(microsecond=micros)
    action = made(
        Action, action_id="a" * 32, customer_id="C-ü", action=ActionKind.send_email,
        channel=ActionChannel.email, template="welcome", journey="lifecycle",
        stage="awareness", rule="welcome", trigger_event_id="e1", created_at=at,
        send_after=at, params=params,
    )  # fmt: skip
    assert output_json(action) == to_json(action)


#: A transition's fields, as the engine gives them to `made`.
_MOVE = {
    "customer_id": "C1", "journey": "lifecycle", "from_stage": None, "to_stage": "awareness",
    "at": START, "trigger_event_id": "e1", "trigger_type": "page_view",
}  # fmt: skip


def test_made_builds_what_model_construct_builds() -> None:
    fields = dict(_MOVE)
    built, constructed = made(Transition, **fields), Transition.model_construct(**fields)
    assert built == constructed
    assert built.model_fields_set == constructed.model_fields_set
    assert built.channels_before_conversion == []
    assert built.copies_gone_within_days is None
    assert to_json(built) == to_json(constructed)
    # A default factory gives each output its own container.
    assert made(Transition, **fields).channels_before_conversion is not (
        built.channels_before_conversion
    )


def test_made_refuses_a_model_it_cannot_build() -> None:
    class Aliased(BaseModel):
        name: str = Field(alias="n")

    with pytest.raises(TypeError, match="Aliased"):
        made(Aliased, name="x")


def test_made_refuses_a_key_the_model_would_ignore() -> None:
    with pytest.raises(TypeError, match="Transition has no field colour"):
        made(Transition, customer_id="C1", colour="red")


def test_made_writes_the_fields_in_the_models_order_whatever_the_keywords() -> None:
    fields = dict(_MOVE)
    backwards = dict(reversed(list(fields.items())))
    assert to_json(made(Transition, **backwards)) == to_json(Transition.model_validate(fields))
