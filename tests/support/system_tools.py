"""System tools some tests drive (Prometheus, promtool, Chromium, kcat): skip without them, fail
in CI."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from processor.settings import REPO_ROOT

#: Where tests keep pictures worth looking at (dashboard, status page): `artifacts/`, or
#: `TOUCHPOINT_TEST_ARTIFACTS` (CI gives suites that run side by side their own).
ARTIFACTS = Path(os.environ.get("TOUCHPOINT_TEST_ARTIFACTS") or REPO_ROOT / "artifacts")

#: `make test` installs these through .ci/system-deps.sh; by hand: apt-get install <package>.
PACKAGE_OF = {
    "prometheus": "prometheus",
    "promtool": "prometheus",
    "chromium": "chromium",
    "kcat": "kcat",
}


def require_tool(name: str) -> str:
    """The tool's path; skips the test when it is missing, or fails it when CI=true."""
    path = shutil.which(name)
    if path is not None:
        return path
    message = (
        f"`{name}` is not installed: run `make system-deps` "
        f"(or apt-get install {PACKAGE_OF.get(name, name)})"
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)
