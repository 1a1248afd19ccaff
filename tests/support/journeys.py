"""Copies of the default journey with every duration shortened, for tests on a real clock."""

from __future__ import annotations

import re
from pathlib import Path

from processor.settings import DEFAULT_JOURNEY_FILE

_DURATION = re.compile(r"\b(\d+)([hd])\b")


def shortened(directory: Path, *, hour_s: int, day_s: int) -> Path:
    """The lifecycle journey with each hour lasting `hour_s` seconds and each day `day_s`."""
    scale = {"h": hour_s, "d": day_s}
    text = DEFAULT_JOURNEY_FILE.read_text(encoding="utf-8")
    text = _DURATION.sub(lambda m: f"{int(m.group(1)) * scale[m.group(2)]}s", text)
    path = directory / f"lifecycle-h{hour_s}s-d{day_s}s.yaml"
    path.write_text(text, encoding="utf-8")
    return path
