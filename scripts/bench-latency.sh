#!/usr/bin/env bash
# Latency and delivery benchmark: builds the release binary, starts `pushwire serve` on a free
# loopback port, runs `pushwire bench fanout` (or `channels`) against it and prints the report.
#
# Env overrides: SCENARIO (fanout | channels), CONNECTIONS (5000), RATE (20 publications/s per
# channel), DURATION (20 s), PAYLOAD_BYTES (64), BENCH_PIN (1: server on core 0, bench on
# core 1; 0: both unpinned), JSON (1: JSON report), HTML (path of an HTML report), BIN /
# BENCH_BIN / BUILD=0 (see bench-server.sh), CARGO_TARGET_DIR ($HOME/.cache/pushwire-target).
# Extra arguments go to `pushwire bench`. The report includes the server's CPU time per
# delivery over the publish phase (`--server-pid`).
set -euo pipefail

cd "$(dirname "$0")/.."

SCENARIO="${SCENARIO:-fanout}"
CONNECTIONS="${CONNECTIONS:-5000}"
RATE="${RATE:-20}"
DURATION="${DURATION:-20}"
PAYLOAD_BYTES="${PAYLOAD_BYTES:-64}"
BENCH_PIN="${BENCH_PIN:-1}"
JSON="${JSON:-0}"
# shellcheck source=scripts/bench-server.sh
source scripts/bench-server.sh

"${BENCH_PIN_CMD[@]}" "$BENCH_BIN" bench "$SCENARIO" \
    --url "http://127.0.0.1:$PORT" \
    --server-pid "$SERVER_PID" \
    --api-key bench \
    --connections "$CONNECTIONS" \
    --rate "$RATE" \
    --duration "$DURATION" \
    --payload-bytes "$PAYLOAD_BYTES" \
    "${EXTRA[@]}" "$@"
