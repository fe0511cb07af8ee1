#!/usr/bin/env bash
# Proxy benchmarks (docs/benchmarks.md, "Proxies"), release build, loopback only, bounded:
# - connect: `pushwire bench connect` (CONNECTIONS, default 5000, with the reconnect storm)
#   against a release node authenticating with a JWT, then the same node authenticating
#   through the connect proxy to a minimal aiohttp backend (one Python process answering
#   {"result":{"user":…}}). Reports each run's connect rate and p50/p99, and the proxy's call
#   count from /metrics.
# - rpc: RPC_CONNS WebSocket connections (default 64 = max_in_flight) each calling `rpc` in a
#   closed loop for RPC_SECONDS (10) through the RPC proxy to a minimal Node backend (one
#   process, scripts/bench-proxy/backend.cjs), then the same loop on a method namespace
#   without a proxy (the node answers at once: the round trip without the backend).
# - subscribe: SUB_CONNS connections (200) each subscribing to SUBS (100) channels one after the
#   other, in a namespace with the subscribe proxy (same Node backend) and in one without:
#   the overhead the proxy adds to a subscribe.
# The load generator for rpc and subscribe is scripts/bench-proxy/load.cjs (raw Centrifugo JSON
# protocol over `ws` from sdk-tests/node_modules): calls/s, p50, p99.
# Env: BIN, BUILD=0, OUT, PARTS ("connect rpc subscribe"), CONNECTIONS, MAX_IN_FLIGHT (64),
# RPC_CONNS, RPC_SECONDS, SUB_CONNS, SUBS.
set -euo pipefail

source "$(dirname "$0")/bench-lib.sh"
CONNECTIONS="${CONNECTIONS:-5000}"
MAX_IN_FLIGHT="${MAX_IN_FLIGHT:-64}"
PARTS="${PARTS:-connect rpc subscribe}"
RPC_CONNS="${RPC_CONNS:-64}"
RPC_SECONDS="${RPC_SECONDS:-10}"
SUB_CONNS="${SUB_CONNS:-200}"
SUBS="${SUBS:-100}"
bench_init proxy

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
wait_tcp "$BACKEND_PORT"

# run NAME PROXY(true|false)
run() {
    local port cfg auth=(--token-hmac-secret bench)
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
    serve_node "$cfg" "$OUT/$1-server.log" "$port"
    "$BIN" bench connect --url "http://127.0.0.1:$port" --api-key bench \
        --connections "$CONNECTIONS" "${auth[@]}" --json >"$OUT/$1.json"
    jq -r --arg n "$1" '"\($n): \(.connections.established) connections (\(.connections.errors) errors) at \(.connections.per_sec|floor)/s, connect p50 \(.connections.latency.p50_us/1000) ms p99 \(.connections.latency.p99_us/1000) ms; reconnect storm \(.reconnect.per_sec // 0 | floor)/s p99 \((.reconnect.latency.p99_us // 0)/1000) ms"' "$OUT/$1.json"
    if [[ "$2" == "true" ]]; then
        curl -fsS "http://127.0.0.1:$port/metrics" | grep '^pushwire_proxy_\(requests_total\|errors_total\|rejected_total\)' || true
    fi
    stop_node "$NODE_PID"
}

if [[ " $PARTS " == *" connect "* ]]; then
    run jwt false
    run proxy true
fi

if [[ " $PARTS " == *" rpc "* || " $PARTS " == *" subscribe "* ]]; then
    NODE_BACKEND_PORT="$(free_port)"
    node scripts/bench-proxy/backend.cjs "$NODE_BACKEND_PORT" >"$OUT/node-backend.log" 2>&1 &
    PIDS+=($!)
    wait_tcp "$NODE_BACKEND_PORT"
    port="$(free_port)"
    cat >"$OUT/rpc-sub.toml" <<EOF
[http_server]
port = $port
connect_rate_per_ip = 0
[http_api]
key = "bench"
[client]
command_rate_limit = 0
[client.token]
hmac_secret_key = "bench"
[channel.proxy.subscribe]
endpoint = "http://127.0.0.1:$NODE_BACKEND_PORT/subscribe"
timeout = "5s"
max_in_flight = $MAX_IN_FLIGHT
[[channel.namespaces]]
name = "px"
subscribe_proxy_enabled = true
[[channel.namespaces]]
name = "plain"
allow_subscribe_for_client = true
[rpc.proxy]
endpoint = "http://127.0.0.1:$NODE_BACKEND_PORT/rpc"
timeout = "5s"
max_in_flight = $MAX_IN_FLIGHT
[rpc.without_namespace]
proxy_enabled = true
[[rpc.namespaces]]
name = "local"
proxy_enabled = false
[log]
level = "warn"
EOF
    serve_node "$OUT/rpc-sub.toml" "$OUT/rpc-sub-server.log" "$port"
    load() {
        NODE_PATH="$PWD/sdk-tests/node_modules" node scripts/bench-proxy/load.cjs \
            "$1" "ws://127.0.0.1:$port/connection/websocket" "$2" "$3" "$4" >>"$OUT/rpc-sub.jsonl"
    }
    if [[ " $PARTS " == *" rpc "* ]]; then
        load rpc echo "$RPC_CONNS" "$RPC_SECONDS"
        load rpc local:echo "$RPC_CONNS" "$RPC_SECONDS"
    fi
    if [[ " $PARTS " == *" subscribe "* ]]; then
        load subscribe px:c "$SUB_CONNS" "$SUBS"
        load subscribe plain:c "$SUB_CONNS" "$SUBS"
    fi
    jq -r '"\(.mode) \(.target): \(.calls) calls (\(.errors) errors) at \(.per_sec)/s, p50 \(.p50_ms) ms, p99 \(.p99_ms) ms"' "$OUT/rpc-sub.jsonl"
    curl -fsS "http://127.0.0.1:$port/metrics" | grep '^pushwire_proxy_\(requests_total\|errors_total\|rejected_total\)' || true
    stop_node "$NODE_PID"
fi
echo "reports in $OUT"
