"""Loaded at start-up by a worker whose PYTHONPATH names this folder (see tests/faults/
test_processing_guarantee.py): every Faust app it builds uses `processing_guarantee=
"exactly_once"`, the mode the product does not offer, so that a test can try it."""

from __future__ import annotations

from typing import Any

import faust

_App = faust.App


class _ExactlyOnceApp(_App):  # type: ignore[misc]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["processing_guarantee"] = "exactly_once"
        super().__init__(*args, **kwargs)


faust.App = _ExactlyOnceApp
