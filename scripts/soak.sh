#!/usr/bin/env bash
# Soak: starts `pushwire serve` on a free loopback port and drives it for SOAK_SECONDS with
# sdk-tests/python/soak.py: 1,000 stable subscribers (soak:c<i> + soak:all), 100 connects/s and
# as many disconnects/s of churn clients, subscribe/unsubscribe churn on stable connections,
# 500 publications/s with per-channel sequence numbers, 20 history reads/s. Samples the
# server's RSS and open files every 10 s into a CSV. Exits 0 when, after the warm-up (20 % of
# the run, at least 30 s), RSS grew < 5 %, open files came back to within +20 of the count
# before churn (churn stops for the last 10 s) and no stable subscriber lost, duplicated or
# reordered a publication; otherwise prints why and exits non-zero.
#
# Env: SOAK_SECONDS (1800), PUSHWIRE_BIN (default $CARGO_TARGET_DIR/debug/pushwire),
# CARGO_TARGET_DIR ($HOME/.cache/pushwire-target), SOAK_CSV (soak-<time>.csv in the temp dir,
# kept), SOAK_PYTHON (sdk-tests/.venv/bin/python). Extra arguments go to soak.py
# (e.g. --pub-rate 200).
set -euo pipefail

cd "$(dirname "$0")/.."

SOAK_SECONDS="${SOAK_SECONDS:-1800}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/pushwire-target}"
BIN="${PUSHWIRE_BIN:-$CARGO_TARGET_DIR/debug/pushwire}"
# The server reads every PUSHWIRE_* variable as configuration (it would refuse `bin`).
unset PUSHWIRE_BIN
PYTHON="${SOAK_PYTHON:-sdk-tests/.venv/bin/python}"

[[ -x "$BIN" ]] || { echo "soak: no pushwire binary at $BIN (set PUSHWIRE_BIN or build it)" >&2; exit 2; }
[[ -x "$PYTHON" ]] || { echo "soak: no Python at $PYTHON (bash scripts/setup-sdks.sh)" >&2; exit 2; }

# 1,000 stable + churn sockets on both sides, plus the server's own.
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/pushwire-soak.XXXXXX")"
CSV="${SOAK_CSV:-$WORK/soak-$(date -u +%Y%m%dT%H%M%SZ).csv}"
PORT="$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
API_KEY="soak-$RANDOM$RANDOM"

cat > "$WORK/soak.toml" <<'EOF'
[log]
level = "warn"

[[channel.namespaces]]
name = "soak"
history_size = 100
history_ttl = "300s"
force_recovery = true
allow_subscribe_for_client = true
allow_subscribe_for_anonymous = true
allow_history_for_anonymous = true
EOF

SERVER_PID=""
cleanup() {
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.2; done
        kill -9 "$SERVER_PID" 2>/dev/null || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PUSHWIRE_HTTP_SERVER__PORT="$PORT" \
PUSHWIRE_HTTP_API__KEY="$API_KEY" \
PUSHWIRE_CLIENT__ALLOW_ANONYMOUS_CONNECT_WITHOUT_TOKEN=true \
PUSHWIRE_HTTP_SERVER__CONNECT_RATE_PER_IP=0 \
    "$BIN" serve --config "$WORK/soak.toml" > "$WORK/server.log" 2>&1 &
SERVER_PID=$!

for _ in $(seq 1 150); do
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        echo "soak: the server exited at start-up:" >&2
        tail -20 "$WORK/server.log" >&2
        exit 2
    fi
    if curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$PORT/health" 2>/dev/null; then
        break
    fi
    sleep 0.2
done
curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$PORT/health" \
    || { echo "soak: the server did not answer /health within 30 s" >&2; exit 2; }

echo "soak: $BIN (pid $SERVER_PID) on port $PORT for ${SOAK_SECONDS} s; csv $CSV; log $WORK/server.log"
status=0
"$PYTHON" sdk-tests/python/soak.py \
    --ws-url "ws://127.0.0.1:$PORT/connection/websocket" \
    --http-url "http://127.0.0.1:$PORT" \
    --api-key "$API_KEY" \
    --server-pid "$SERVER_PID" \
    --duration "$SOAK_SECONDS" \
    --csv "$CSV" \
    "$@" || status=$?

if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "soak: FAIL: the server died during the run; last log lines:" >&2
    tail -20 "$WORK/server.log" >&2
    exit 1
fi
if grep -q "panicked" "$WORK/server.log"; then
    echo "soak: FAIL: the server log has a panic:" >&2
    grep -m3 -A3 "panicked" "$WORK/server.log" >&2
    status=1
fi
echo "soak: csv $CSV"
exit "$status"
