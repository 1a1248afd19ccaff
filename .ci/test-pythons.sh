#!/usr/bin/env bash
# The unit tests (the journey scenarios among them) on each other supported Python version:
# `.ci/test-pythons.sh 3.12 3.13`. Each gets a virtualenv .venv-<version> with the package
# installed at the tested versions (constraints.txt). A version with no interpreter on this
# machine (python3.X on PATH, or under ~/.pyenv/versions) is reported and skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

status=0
for version in "$@"; do
    python=""
    # A pyenv shim on PATH may name a version it will not run: take the first that runs.
    for candidate in $(ls -d "$HOME"/.pyenv/versions/"$version".*/bin/"python$version" 2>/dev/null | sort -rV) \
                     $(command -v "python$version" || true); do
        if "$candidate" --version >/dev/null 2>&1; then python=$candidate; break; fi
    done
    if [ -z "$python" ]; then
        echo "python$version: no interpreter on this machine, skipped"
        continue
    fi
    venv=".venv-$version"
    stamp="$venv/.installed-stamp"
    if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ constraints.txt -nt "$stamp" ]; then
        echo "python$version: installing into $venv ($("$python" --version))"
        "$python" -m venv "$venv"
        "$venv/bin/pip" install --quiet --upgrade pip
        "$venv/bin/pip" install --quiet --constraint constraints.txt -e ".[dev,embedded]"
        touch "$stamp"
    fi
    echo "python$version: unit tests"
    "$venv/bin/python" -m pytest -q -p no:cacheprovider -n 2 tests/unit || status=$?
done
exit "$status"
