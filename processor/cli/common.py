"""What every command shares: the settings, read once, with readable errors."""

from __future__ import annotations

from pydantic import ValidationError

from processor.settings import Settings


def load_settings() -> Settings:
    """The settings from the environment, or exit with one line per invalid variable."""
    try:
        return Settings()
    except ValidationError as exc:
        lines = [
            f"  TOUCHPOINT_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors()
        ]
        raise SystemExit("touchpoint: invalid configuration:\n" + "\n".join(lines)) from exc
