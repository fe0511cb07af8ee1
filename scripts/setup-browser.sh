#!/usr/bin/env bash
# Installs what the browser and transport suites need (crates/pushwire-server/tests/sdk/browser.rs,
# tests/sdk/transports.rs):
#   - Chromium at /usr/bin/chromium (Debian's package, via apt-get) when it is missing;
#   - sdk-tests/browser/node_modules: playwright-core (drives the system Chromium, downloads no
#     browser), centrifuge-js, ws, eventsource (npm ci from the lock).
# Idempotent: Chromium is left alone when present; node_modules is skipped while its stamp (a
# hash of package.json, package-lock.json and the Node version) still matches. FORCE=1 reinstalls
# node_modules.
set -euo pipefail

cd "$(dirname "$0")/../sdk-tests/browser"
FORCE="${FORCE:-0}"
start=$SECONDS

# --- Chromium ----------------------------------------------------------------------------------
if [[ -x /usr/bin/chromium ]]; then
    echo "setup-browser: chromium present ($(/usr/bin/chromium --version 2>/dev/null | head -1))"
else
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "setup-browser: /usr/bin/chromium is missing and apt-get is not available" >&2
        exit 1
    fi
    sudo=""
    if [[ "$(id -u)" != 0 ]]; then
        sudo="sudo"
    fi
    chromium_start=$SECONDS
    $sudo apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q chromium >/dev/null
    echo "setup-browser: installed $(/usr/bin/chromium --version 2>/dev/null | head -1) in $((SECONDS - chromium_start)) s"
fi

# --- Node packages -----------------------------------------------------------------------------
for tool in node npm; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "setup-browser: '$tool' is not on PATH; install Node.js >= 20 (apt-get install -y nodejs npm)" >&2
        exit 1
    fi
done
node_major="$(node -p 'process.versions.node.split(".")[0]')"
if (( node_major < 20 )); then
    echo "setup-browser: Node.js >= 20 is required, found $(node --version)" >&2
    exit 1
fi
stamp="$({ node --version; cat package.json package-lock.json; } | sha256sum | cut -d' ' -f1)"
if [[ "$FORCE" != 1 && -f node_modules/.pushwire-setup && "$(cat node_modules/.pushwire-setup)" == "$stamp" \
      && -f node_modules/playwright-core/package.json && -f node_modules/centrifuge/package.json ]]; then
    echo "setup-browser: node_modules up to date"
else
    npm ci --no-audit --no-fund --loglevel=error
    echo "$stamp" >node_modules/.pushwire-setup
    version() { node -p "require('./node_modules/$1/package.json').version"; }
    echo "setup-browser: installed playwright-core $(version playwright-core), centrifuge $(version centrifuge)," \
        "ws $(version ws), eventsource $(version eventsource)"
fi

echo "setup-browser: done in $((SECONDS - start)) s"
