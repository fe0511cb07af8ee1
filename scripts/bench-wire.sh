#!/usr/bin/env bash
# Wire benchmarks of issue 15 on the release binary, one server:
#  1. bytes per delivery of a ~2 KB JSON document changing a few fields, `pushwire bench
#     fanout --document` plain, with `--delta fossil`, with `--deflate` (permessage-deflate
#     negotiated; bytes counted inflated) and with both (CONNECTIONS × RATE/s × DURATION s),
#     with the server's CPU time per delivery;
#  2. scripts/wire-bytes.py on the same server: plain, plain+deflate, fossil, fossil+deflate for
#     the same 200 publications, each on its own connection, bytes measured as they were on
#     the wire (see the script). The server runs with websocket.compression = true.
# PUSHWIRE_CLIENT__WRITE_DELAY=5ms (or any server setting) passes through to the server.
#
# Env: CONNECTIONS (100), RATE (20), DURATION (10), PAYLOAD_BYTES (2048), BENCH_PIN (1),
# PYTHON (sdk-tests/.venv/bin/python: needs `websockets`).
set -euo pipefail

cd "$(dirname "$0")/.."

CONNECTIONS="${CONNECTIONS:-100}"
RATE="${RATE:-20}"
DURATION="${DURATION:-10}"
PAYLOAD_BYTES="${PAYLOAD_BYTES:-2048}"
BENCH_PIN="${BENCH_PIN:-1}"
JSON=1
PYTHON="${PYTHON:-sdk-tests/.venv/bin/python}"

SERVER_CONFIG="$(mktemp -t pushwire-bench-wire.XXXXXX.toml)"
cat >"$SERVER_CONFIG" <<'TOML'
[[channel.namespaces]]
name = "delta"
allow_subscribe_for_client = true
allow_subscribe_for_anonymous = true
allowed_delta_types = ["fossil"]

[websocket]
compression = true
TOML
# shellcheck source=scripts/bench-server.sh
source scripts/bench-server.sh

cpu_ticks() {
    awk '{print $14 + $15}' "/proc/$SERVER_PID/stat"
}

for mode in plain fossil deflate fossil+deflate; do
    args=()
    if [[ "$mode" == fossil* ]]; then
        args+=(--delta fossil)
    fi
    if [[ "$mode" == *deflate ]]; then
        args+=(--deflate)
    fi
    before="$(cpu_ticks)"
    report="$("${BENCH_PIN_CMD[@]}" "$BIN" bench fanout \
        --url "http://127.0.0.1:$PORT" --api-key bench \
        --connections "$CONNECTIONS" --rate "$RATE" --duration "$DURATION" \
        --channel "delta:bench-${mode/+/-}" --document --payload-bytes "$PAYLOAD_BYTES" \
        "${args[@]}" "${EXTRA[@]}" "$@")"
    after="$(cpu_ticks)"
    echo "$report" | python3 -c '
import json, sys
r = json.load(sys.stdin)
d, l = r["deliveries"], r["latency"]
ticks, hz = int(sys.argv[2]) - int(sys.argv[1]), 100
cpu_us = ticks / hz * 1e6 / max(d["delivered"], 1)
print(json.dumps({"mode": sys.argv[3], "delivered": d["delivered"], "lost": d["lost"],
  "bytes": d["bytes"], "bytes_per_delivery": round(d["bytes_per_delivery"], 1),
  "frames": d["frames"], "p50_us": l["p50_us"], "p99_us": l["p99_us"],
  "server_cpu_us_per_delivery": round(cpu_us, 2)}))
' "$before" "$after" "$mode"
done

"$PYTHON" scripts/wire-bytes.py "http://127.0.0.1:$PORT" bench delta:wire 200 "$PAYLOAD_BYTES"
rm -f "$SERVER_CONFIG"
