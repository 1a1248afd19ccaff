"""What every command shares: the settings, read once, with readable errors, and the argument
types that refuse nonsense (a negative rate) before anything starts."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Mapping
from typing import TypeVar

from pydantic import ValidationError

from processor import logs
from processor.settings import Settings
from processor.suggest import closest

PREFIX = "TOUCHPOINT_"


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """One warning per `TOUCHPOINT_*` variable that is not a setting, naming the closest one."""
    known = [PREFIX + name.upper() for name in Settings.model_fields]
    warnings = []
    for name in sorted(environ):
        if name.startswith(PREFIX) and name not in known:
            match = closest(name, known, cutoff=0.8)
            hint = f"; did you mean {match}?" if match else ""
            warnings.append(f"{name} is not a setting, ignored{hint}")
    return warnings


def load_settings() -> Settings:
    """The settings from the environment, or exit with one line per invalid variable; a
    warning (in the log format they set) for each unknown `TOUCHPOINT_*` variable."""
    try:
        settings = Settings()
    except ValidationError as exc:
        lines = [
            f"  {PREFIX}{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}"
            if e["loc"]
            else f"  {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        ]
        raise SystemExit("touchpoint: invalid configuration:\n" + "\n".join(lines)) from exc
    for warning in unknown_variables(os.environ):
        logs.announce(settings.log_format, warning, level="warning", stream=sys.stderr)
    return settings


T = TypeVar("T")


def _checked(convert: Callable[[str], T], ok: Callable[[T], bool], what: str) -> Callable[[str], T]:
    def parse(text: str) -> T:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
        return value

    parse.__name__ = what  # argparse names the type in its messages
    return parse


positive_int = _checked(int, lambda v: v > 0, "a whole number above 0")
positive_float = _checked(float, lambda v: v > 0, "a number above 0")
fraction = _checked(float, lambda v: 0 <= v <= 1, "a fraction from 0 to 1")
