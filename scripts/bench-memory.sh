#!/usr/bin/env bash
# Server memory per connection: builds the release binary, starts `pushwire serve` on a free
# loopback port, holds idle subscribers with `pushwire bench idle --server-pid` and prints the
# server RSS growth per connection.
#
# Env overrides: CONNECTIONS (10000), DURATION (10 s, how long connections are held),
# PERSONAL (1: each connection on its own channel `bench-<i>`, as users' personal channels;
# default 0: all on one channel),
# BENCH_PIN (1: server on core 0, bench on core 1), JSON (1: JSON report), HTML (path of an
# HTML report), CARGO_TARGET_DIR ($HOME/.cache/pushwire-target). Extra arguments go to
# `pushwire bench`.
#
# With permessage-deflate: `PUSHWIRE_WEBSOCKET__COMPRESSION=true bash scripts/bench-memory.sh
# --deflate` (the server accepts the extension, every bench connection offers it; the report
# counts the connections that negotiated it).
set -euo pipefail

cd "$(dirname "$0")/.."

CONNECTIONS="${CONNECTIONS:-10000}"
DURATION="${DURATION:-10}"
BENCH_PIN="${BENCH_PIN:-1}"
JSON="${JSON:-0}"
PERSONAL="${PERSONAL:-0}"
# shellcheck source=scripts/bench-server.sh
source scripts/bench-server.sh
if [[ "$PERSONAL" == "1" ]]; then
    EXTRA+=(--personal)
fi

"${BENCH_PIN_CMD[@]}" "$BIN" bench idle \
    --url "http://127.0.0.1:$PORT" \
    --api-key bench \
    --connections "$CONNECTIONS" \
    --duration "$DURATION" \
    --server-pid "$SERVER_PID" \
    "${EXTRA[@]}" "$@"
