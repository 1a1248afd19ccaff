"""What a journey table key holds, and the states the journey agent keeps decoded."""

from __future__ import annotations

from processor.journey.state import CustomerState, encode
from processor.stream.agents.held import Decoded, held_at, moved


def _state(stage: str) -> CustomerState:
    return CustomerState(customer_id="C-1", stage=stage, stage_since=1.0)


def test_a_stored_state_is_reused_only_for_the_bytes_it_was_stored_as() -> None:
    decoded = Decoded()
    kept = _state("purchase")
    raw = encode(kept)
    decoded.keep(b"C-1", raw, kept)
    assert decoded.held_at(b"C-1", raw) is kept
    # The same bytes read back from the store (another object): the kept state.
    assert decoded.held_at(b"C-1", bytes(bytearray(raw))) is kept
    # Something else stored at the key since (by another worker, before a rebalance): what
    # it holds now.
    assert decoded.held_at(b"C-1", encode(_state("retention"))) == _state("retention")
    assert decoded.held_at(b"C-1", moved("C-2")) == "C-2"
    assert decoded.held_at(b"C-1", None) is None
    # Another key with the same bytes is decoded on its own.
    assert decoded.held_at(b"C-9", raw) is not kept


def test_the_key_stored_longest_ago_goes_first() -> None:
    decoded = Decoded(most=3)
    stored = {}
    for n in (0, 1, 2, 0, 3):  # C-0 stored again after C-2: C-1 is the oldest when C-3 comes
        state = _state(f"s{n}")
        raw = encode(state)
        decoded.keep(f"C-{n}".encode(), raw, state)
        stored[n] = (raw, state)
    assert decoded.held_at(b"C-1", stored[1][0]) is not stored[1][1]
    for n in (0, 2, 3):
        assert decoded.held_at(f"C-{n}".encode(), stored[n][0]) is stored[n][1]


def test_held_at_reads_states_markers_and_nothing() -> None:
    assert held_at(encode(_state("purchase"))) == _state("purchase")
    assert held_at(moved("C-9")) == "C-9"
    assert held_at(None) is None
