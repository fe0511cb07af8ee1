#!/usr/bin/env bash
# The kernel's floor under a fan-out round: builds the release binary and runs
# `pushwire bench floor` (no server: N loopback TCP connections from a writing thread to an
# in-process sink thread, one frame of the fan-out's size written to each per round, plain
# `write` calls and io_uring batches interleaved).
#
# Env overrides: CONNECTIONS (5000), RATE (20 rounds/s), DURATION (10 s: RATE × DURATION rounds
# of each method), PAYLOAD_BYTES (64, as bench-latency.sh), BENCH_PIN (1: writer on core 0 as
# the server, sink on core 1 as the bench), JSON (1: JSON report), BIN and BUILD=0 (a frozen
# binary), CARGO_TARGET_DIR ($HOME/.cache/pushwire-target). Extra arguments go to
# `pushwire bench floor`.
set -euo pipefail

cd "$(dirname "$0")/.."

CONNECTIONS="${CONNECTIONS:-5000}"
RATE="${RATE:-20}"
DURATION="${DURATION:-10}"
PAYLOAD_BYTES="${PAYLOAD_BYTES:-64}"
BENCH_PIN="${BENCH_PIN:-1}"
JSON="${JSON:-0}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/pushwire-target}"
BIN="${BIN:-$CARGO_TARGET_DIR/release/pushwire}"

if [[ "${BUILD:-1}" == "1" ]]; then
    echo "building release binary..." >&2
    cargo build --release -p pushwire-server >&2
fi
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"

ARGS=(--connections "$CONNECTIONS" --rate "$RATE" --duration "$DURATION" --payload-bytes "$PAYLOAD_BYTES")
if [[ "$BENCH_PIN" == "1" ]] && [[ "$(nproc)" -ge 2 ]]; then
    ARGS+=(--writer-cpu 0 --sink-cpu 1)
fi
if [[ "$JSON" == "1" ]]; then
    ARGS+=(--json)
fi
exec "$BIN" bench floor "${ARGS[@]}" "$@"
