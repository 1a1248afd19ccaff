#!/usr/bin/env bash
# Install the system tools the test suite drives (Prometheus with promtool, headless Chromium,
# kcat) from Debian packages, only when missing; a no-op once they are there.
set -euo pipefail

missing=()
command -v prometheus >/dev/null && command -v promtool >/dev/null || missing+=(prometheus)
command -v chromium >/dev/null || missing+=(chromium)
command -v kcat >/dev/null || missing+=(kcat)
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null; then
    echo "system-deps: no apt-get; install ${missing[*]} yourself (tests needing them skip)" >&2
    exit 0
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
        sudo=(sudo -n)
    else
        echo "system-deps: not root; run: sudo apt-get install -y ${missing[*]} (tests needing them skip)" >&2
        exit 0
    fi
fi
echo "system-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# A fresh container has no package lists; refresh them only when the install cannot find a package.
"${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}" \
    || { "${sudo[@]}" apt-get update && "${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}"; }
