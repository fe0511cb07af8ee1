#!/usr/bin/env bash
# Connect-proxy benchmark (docs/benchmarks.md, "Proxies"): `pushwire bench connect`
# (CONNECTIONS, default 5000, with the reconnect storm) against a release node authenticating
# with a JWT, then the same node authenticating through the connect proxy to a minimal aiohttp
# backend (one Python process answering {"result":{"user":…}}), in one run. Reports each
# run's connect rate and p50/p99, and the proxy's call count and p50 from /metrics.
# Loopback only, bounded. Env: BIN, BUILD=0, OUT, CONNECTIONS, MAX_IN_FLIGHT (64).
set -euo pipefail

cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/pushwire-target}"
BIN="${BIN:-$CARGO_TARGET_DIR/release/pushwire}"
CONNECTIONS="${CONNECTIONS:-5000}"
MAX_IN_FLIGHT="${MAX_IN_FLIGHT:-64}"
OUT="${OUT:-/tmp/pushwire-bench-proxy/$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$OUT"
if [[ "${BUILD:-1}" == "1" ]]; then
    cargo build --release -p pushwire-server >&2
fi
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true' EXIT

BACKEND_PORT="$(free_port)"
cat >"$OUT/backend.py" <<'EOF'
import itertools, sys
from aiohttp import web
n = itertools.count()
async def connect(request):
    await request.read()
    return web.json_response({"result": {"user": f"u{next(n)}"}})
app = web.Application()
app.router.add_post("/connect", connect)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
EOF
sdk-tests/.venv/bin/python "$OUT/backend.py" "$BACKEND_PORT" >"$OUT/backend.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$BACKEND_PORT") 2>/dev/null && break
    sleep 0.1
done

# run NAME PROXY(true|false)
run() {
    local port cfg pid auth=(--token-hmac-secret bench)
    port="$(free_port)"
    cfg="$OUT/$1.toml"
    cat >"$cfg" <<EOF
[http_server]
port = $port
connect_rate_per_ip = 0
[http_api]
key = "bench"
[client.token]
hmac_secret_key = "bench"
[client.proxy.connect]
enabled = $2
endpoint = "http://127.0.0.1:$BACKEND_PORT/connect"
timeout = "5s"
max_in_flight = $MAX_IN_FLIGHT
[channel.without_namespace]
allow_subscribe_for_client = true
[log]
level = "warn"
EOF
    if [[ "$2" == "true" ]]; then auth=(); fi
    "$BIN" serve --config "$cfg" >"$OUT/$1-server.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    for _ in $(seq 1 100); do
        curl -fsS -o /dev/null "http://127.0.0.1:$port/health" && break
        sleep 0.1
    done
    "$BIN" bench connect --url "http://127.0.0.1:$port" --api-key bench \
        --connections "$CONNECTIONS" "${auth[@]}" --json >"$OUT/$1.json"
    jq -r --arg n "$1" '"\($n): \(.connections.established) connections (\(.connections.errors) errors) at \(.connections.per_sec|floor)/s, connect p50 \(.connections.latency.p50_us/1000) ms p99 \(.connections.latency.p99_us/1000) ms; reconnect storm \(.reconnect.per_sec // 0 | floor)/s p99 \((.reconnect.latency.p99_us // 0)/1000) ms"' "$OUT/$1.json"
    if [[ "$2" == "true" ]]; then
        curl -fsS "http://127.0.0.1:$port/metrics" | grep '^pushwire_proxy_\(requests_total\|errors_total\|rejected_total\)' || true
    fi
    kill "$pid"
    wait "$pid" 2>/dev/null || true
}

run jwt false
run proxy true
echo "reports in $OUT"
