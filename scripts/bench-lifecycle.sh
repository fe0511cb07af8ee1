#!/usr/bin/env bash
# Lifecycle events benchmark (docs/benchmarks.md, "Lifecycle events"): the cost of lifecycle
# events on connect and subscribe, and the events/s a webhook sink delivers.
#
# Runs `pushwire bench connect` (CONNECTIONS, default 10000, unpaced, with the reconnect
# storm) against a release node twice in one run: lifecycle off, then lifecycle on with a
# webhook sink to the example consumer (sdk-tests/python/lifecycle_consumer.py). Prints both
# connect reports' rate and p50/p99, the events the consumer received and how long the sink
# took to deliver them. Loopback only, bounded. Env: BIN, BUILD=0, OUT, CONNECTIONS, ORDER
# (default "off on"; "on off off on" alternates to expose order effects).
set -euo pipefail

source "$(dirname "$0")/bench-lib.sh"
CONNECTIONS="${CONNECTIONS:-10000}"
SECRET="bench-lifecycle-secret-0123456789"
PYTHON="sdk-tests/.venv/bin/python"
bench_init lifecycle

CONSUMER_PORT="$(free_port)"
(cd sdk-tests && exec "../$PYTHON" python/lifecycle_consumer.py "$CONSUMER_PORT" "$SECRET") \
    >"$OUT/consumer.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$CONSUMER_PORT/online"

# run NAME ENABLED: one node, one connect bench.
run() {
    local port cfg
    port="$(free_port)"
    cfg="$OUT/$1.toml"
    cat >"$cfg" <<EOF
[http_server]
port = $port
connect_rate_per_ip = 0
[http_api]
key = "bench"
[client]
allow_anonymous_connect_without_token = true
[client.token]
hmac_secret_key = "bench"
[channel.without_namespace]
allow_subscribe_for_anonymous = true
allow_subscribe_for_client = true
[log]
level = "warn"
[lifecycle]
enabled = $2
[[lifecycle.sinks]]
type = "webhook"
url = "http://127.0.0.1:$CONSUMER_PORT/events"
secret = "$SECRET"
EOF
    serve_node "$cfg" "$OUT/$1-server.log" "$port"
    local before
    before="$(curl -fsS "http://127.0.0.1:$CONSUMER_PORT/online" | jq .connections)"
    "$BIN" bench connect --url "http://127.0.0.1:$port" --api-key bench \
        --connections "$CONNECTIONS" --token-hmac-secret bench --json >"$OUT/$1.json"
    jq -r --arg n "$1" '"\($n): \(.connections.established) connections at \(.connections.per_sec|floor)/s, connect p50 \(.connections.latency.p50_us/1000) ms p99 \(.connections.latency.p99_us/1000) ms; reconnect storm \(.reconnect.per_sec // 0 | floor)/s p99 \((.reconnect.latency.p99_us // 0)/1000) ms"' "$OUT/$1.json"
    if [[ "$2" == "true" ]]; then
        local start metrics delivered spooled
        start=$(date +%s.%N)
        for _ in $(seq 1 600); do
            metrics="$(curl -fsS "http://127.0.0.1:$port/metrics")"
            spooled="$(grep '^pushwire_lifecycle_sink_spooled' <<<"$metrics" | awk '{print $2}')"
            [[ "$spooled" == "0" ]] && break
            sleep 0.1
        done
        delivered="$(grep '^pushwire_lifecycle_sink_delivered_total' <<<"$metrics" | awk '{print $2}')"
        echo "$1: $delivered events delivered to the webhook; spool empty $(echo "$(date +%s.%N) - $start" | bc) s after the bench ended; consumer table $before -> $(curl -fsS "http://127.0.0.1:$CONSUMER_PORT/online" | jq .connections) connections"
        grep '^pushwire_lifecycle_\(events_total\|dropped_total\|sink_failures\|sink_dropped\)' <<<"$metrics" >"$OUT/$1-lifecycle-metrics.txt" || true
    fi
    stop_node "$NODE_PID"
}

for case in ${ORDER:-off on}; do
    if [[ "$case" == on ]]; then run on true; else run off false; fi
done
echo "reports in $OUT"
