"""The built wheel, installed into a fresh virtualenv outside the repository, works on its own.

A user installs the package, not the checkout: the topic declarations, the schemas and the
journey must come with it, and `touchpoint` must find them from any working directory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from processor.settings import REPO_ROOT
from tests.support.worker import WorkerProcess

pytestmark = pytest.mark.broker

#: What the wheel is built from (the Dockerfile copies the same).
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "processor", "topics")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The `touchpoint` script of a fresh virtualenv holding only the built wheel and its deps."""
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"
    for name in SOURCES:
        origin = REPO_ROOT / name
        if origin.is_dir():
            shutil.copytree(
                origin, src / name, symlinks=True, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            src.mkdir(exist_ok=True)
            shutil.copy2(origin, src / name)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--wheel-dir", str(root / "dist"), str(src)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    (wheel,) = (root / "dist").glob("touchpoint_processor-*.whl")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run(
        [str(venv / "bin/python"), "-m", "pip", "--disable-pip-version-check", "--quiet",
         "install", "--constraint", str(REPO_ROOT / "constraints.txt"), str(wheel)],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    return venv / "bin" / "touchpoint"


def _env(bootstrap: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("TOUCHPOINT_", "PYTHON"))}
    return {**keep, "TOUCHPOINT_KAFKA_BOOTSTRAP": bootstrap}


def test_installed_wheel_applies_topics_runs_and_publishes(
    installed: Path, broker_bootstrap: str, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = _env(broker_bootstrap)

    def touchpoint(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(installed), *args],
            cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip

    where = touchpoint("--version")
    assert where.returncode == 0, where.stderr
    metadata = subprocess.run(
        [str(installed.parent / "python"), "-c",
         "from importlib.metadata import metadata as m; d = m('touchpoint-processor'); "
         "print(d['License-Expression'], d.get_all('License-File'))"],
        cwd=elsewhere, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert metadata.stdout.split(None, 1) == ["Apache-2.0", "['LICENSE']\n"]
    # The embedded broker is an extra: without it, `run` with no cluster says what to install.
    alone = {k: v for k, v in env.items() if k != "TOUCHPOINT_KAFKA_BOOTSTRAP"}
    no_broker = subprocess.run(
        [str(installed), "run"],
        cwd=elsewhere, env=alone, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert no_broker.returncode == 1
    assert no_broker.stderr == (
        "touchpoint: the embedded broker is not installed: pip install "
        "'touchpoint-processor[embedded]', or set TOUCHPOINT_KAFKA_BOOTSTRAP=host:port\n"
    )
    imported = subprocess.run(
        [str(installed.parent / "python"), "-c", "import processor; print(processor.__file__)"],
        cwd=elsewhere, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert not Path(imported.stdout.strip()).is_relative_to(REPO_ROOT), imported.stdout

    applied = touchpoint("topics", "apply")
    assert applied.returncode == 0, applied.stderr
    checked = touchpoint("topics", "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "topics match their declarations" in checked.stdout

    events = elsewhere / "events.jsonl"
    shutil.copy2(REPO_ROOT / "topics/examples/events.jsonl", events)
    with WorkerProcess(
        broker_bootstrap,
        tmp_path / "worker",
        command=[str(installed), "run"],
        cwd=elsewhere,
        base_env=env,
    ):
        published = touchpoint("publish", "--now", str(events))
        assert published.returncode == 0, published.stderr
        assert "published 7 message(s)" in published.stderr
        tailed = touchpoint(
            "tail", "actions", "--from-beginning", "--customer", "C-1001", "--max", "1",
            "--idle-timeout", "60",
        )  # fmt: skip
    assert tailed.returncode == 0, tailed.stderr
    (action,) = [orjson.loads(line) for line in tailed.stdout.splitlines()]
    assert action["template"] == "welcome"
