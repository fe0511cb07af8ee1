#!/usr/bin/env bash
# Connection storm then reconnect storm: builds the release binary, starts `pushwire serve` on a
# free loopback port, opens CONNECTIONS connections as fast as the bench allows (signed tokens
# for user `bench`), has the server disconnect that user through the API and measures how fast
# every connection comes back.
#
# Env overrides: CONNECTIONS (10000), BENCH_PIN (1: server on core 0, bench on core 1), JSON
# (1: JSON report), HTML (path of an HTML report), CARGO_TARGET_DIR
# ($HOME/.cache/pushwire-target). Extra arguments go to `pushwire bench`.
set -euo pipefail

cd "$(dirname "$0")/.."

CONNECTIONS="${CONNECTIONS:-10000}"
BENCH_PIN="${BENCH_PIN:-1}"
JSON="${JSON:-0}"
# shellcheck source=scripts/bench-server.sh
source scripts/bench-server.sh

"${BENCH_PIN_CMD[@]}" "$BIN" bench connect \
    --url "http://127.0.0.1:$PORT" \
    --api-key bench \
    --token-hmac-secret bench \
    --connections "$CONNECTIONS" \
    "${EXTRA[@]}" "$@"
