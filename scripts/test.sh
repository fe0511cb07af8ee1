#!/usr/bin/env bash
# The test command: installs the real SDKs and the browser the compatibility suites drive
# (scripts/setup-sdks.sh, scripts/setup-browser.sh; quick when already installed) and starts the brokers
# the consumer and engine suites use (scripts/services.sh), then runs every test of the workspace (unit, end-to-end, and
# the centrifuge-js / centrifuge-python / cent suites) with cargo-nextest, or `cargo test` when
# nextest is not installed. Extra arguments go to the test runner.
#
# Env: CARGO_TARGET_DIR ($HOME/.cache/pushwire-target).
set -euo pipefail

cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/pushwire-target}"

bash scripts/setup-sdks.sh
bash scripts/setup-browser.sh
bash scripts/services.sh

if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --locked --no-fail-fast "$@"
else
    echo "test.sh: cargo-nextest not found, running cargo test"
    cargo test --workspace --locked --no-fail-fast "$@"
fi
