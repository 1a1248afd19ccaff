"""What a journey table key holds, and the states the journey agent keeps decoded."""

from __future__ import annotations

from processor.journey.state import CustomerState, encode
from processor.stream.agents.held import Decoded, held_at, moved


def _state(stage: str) -> CustomerState:
    return CustomerState(customer_id="C-1", stage=stage, stage_since=1.0)


def test_a_stored_state_is_reused_only_for_the_very_bytes_it_was_stored_as() -> None:
    decoded = Decoded()
    kept = _state("purchase")
    raw = encode(kept)
    decoded.keep(b"C-1", raw, kept)
    assert decoded.held_at(b"C-1", raw) is kept
    # Equal bytes read back from the store are another object: decoded again.
    again = decoded.held_at(b"C-1", bytes(bytearray(raw)))
    assert again is not kept
    assert again == kept
    # Something else stored at the key since: what it holds now.
    assert decoded.held_at(b"C-1", encode(_state("retention"))) == _state("retention")
    assert decoded.held_at(b"C-1", moved("C-2")) == "C-2"
    assert decoded.held_at(b"C-1", None) is None


def test_the_decoded_states_are_bounded() -> None:
    decoded = Decoded(most=3)
    stored = []
    for n in range(4):
        state = _state(f"s{n}")
        raw = encode(state)
        decoded.keep(f"C-{n}".encode(), raw, state)
        stored.append((raw, state))
    # The fourth key found three kept: they were forgotten, and the fourth is kept.
    assert decoded.held_at(b"C-0", stored[0][0]) is not stored[0][1]
    assert decoded.held_at(b"C-3", stored[3][0]) is stored[3][1]


def test_held_at_reads_states_markers_and_nothing() -> None:
    assert held_at(encode(_state("purchase"))) == _state("purchase")
    assert held_at(moved("C-9")) == "C-9"
    assert held_at(None) is None
