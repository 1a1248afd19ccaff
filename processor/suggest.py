"""The likely meant name for a mistyped one: stages, event types, keys, topics, settings."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def closest(value: object, options: Iterable[str], cutoff: float = 0.6) -> str | None:
    """The option most like `value`, if any is like it at all."""
    close = difflib.get_close_matches(str(value), list(options), n=1, cutoff=cutoff)
    return close[0] if close else None


def did_you_mean(value: object, options: Iterable[str], cutoff: float = 0.6) -> str:
    """` (did you mean 'x'?)` for the closest option to a mistyped value, or nothing."""
    match = closest(value, options, cutoff)
    return f" (did you mean {match!r}?)" if match else ""
