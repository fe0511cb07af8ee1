#!/usr/bin/env bash
# Installs the real SDKs the compatibility suite drives (crates/pushwire-server/tests/sdk_*.rs):
#   - sdk-tests/node_modules: centrifuge-js, cent.js, ws, eventsource (npm ci from the lock);
#   - sdk-tests/.venv: centrifuge-python and cent (pip install -r requirements.txt).
# Idempotent: each part is skipped while its stamp (a hash of its manifest and tool version)
# still matches. FORCE=1 reinstalls both.
set -euo pipefail

cd "$(dirname "$0")/../sdk-tests"

FORCE="${FORCE:-0}"

need() {
    if ! command -v "$1" >/dev/null 2>&1; then
        echo "setup-sdks: '$1' is not on PATH; $2" >&2
        exit 1
    fi
}

# The stamp of a part: hash of the given files plus a tool version string.
stamp_of() {
    local version="$1"
    shift
    { echo "$version"; cat "$@"; } | sha256sum | cut -d' ' -f1
}

pkg_version() {
    node -p "JSON.parse(require('fs').readFileSync('node_modules/$1/package.json')).version"
}

up_to_date() {
    [[ "$FORCE" != 1 && -f "$1" && "$(cat "$1")" == "$2" ]]
}

start=$SECONDS

# --- Node: centrifuge-js, cent.js -------------------------------------------------------------
need node "install Node.js >= 20 (e.g. apt-get install -y nodejs npm)"
need npm "install npm (e.g. apt-get install -y npm)"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
if (( node_major < 20 )); then
    echo "setup-sdks: Node.js >= 20 is required, found $(node --version)" >&2
    exit 1
fi
if [[ -f package-lock.json ]]; then
    node_stamp="$(stamp_of "$(node --version)" package.json package-lock.json)"
else
    node_stamp="$(stamp_of "$(node --version)" package.json)"
fi
if up_to_date node_modules/.pushwire-setup "$node_stamp" \
    && [[ -f node_modules/centrifuge/package.json ]]; then
    echo "setup-sdks: node_modules up to date"
else
    if [[ -f package-lock.json ]]; then
        npm ci --no-audit --no-fund --loglevel=error
    else
        npm install --no-audit --no-fund --loglevel=error
        node_stamp="$(stamp_of "$(node --version)" package.json package-lock.json)"
    fi
    echo "$node_stamp" >node_modules/.pushwire-setup
    echo "setup-sdks: installed centrifuge-js $(pkg_version centrifuge)," \
        "cent.js $(pkg_version cent.js)"
fi

# --- Python: centrifuge-python, cent ----------------------------------------------------------
need python3 "install Python >= 3.9 with venv (e.g. apt-get install -y python3 python3-venv)"
py_version="$(python3 -c 'import sys; print(sys.version)')"
py_stamp="$(stamp_of "$py_version" requirements.txt)"
if up_to_date .venv/.pushwire-setup "$py_stamp" && [[ -x .venv/bin/python ]]; then
    echo "setup-sdks: .venv up to date"
else
    rm -rf .venv
    if ! python3 -m venv .venv; then
        echo "setup-sdks: 'python3 -m venv' failed; install the venv module" \
            "(e.g. apt-get install -y python3-venv)" >&2
        exit 1
    fi
    .venv/bin/python -m pip install --disable-pip-version-check --quiet -r requirements.txt
    echo "$py_stamp" >.venv/.pushwire-setup
    echo "setup-sdks: installed $(.venv/bin/python -m pip freeze --disable-pip-version-check \
        | grep -E '^(centrifuge-python|cent)==' | tr '\n' ' ')"
fi

echo "setup-sdks: done in $((SECONDS - start)) s"
