#!/usr/bin/env bash
# Cluster benchmark (docs/benchmarks.md, "Cluster"): release nodes on the Redis engine behind a
# round-robin HAProxy, measured in one run against the same load on one node behind the same
# HAProxy.
#
# 1. fanout: CONNECTIONS (9000) WebSocket subscribers of one channel through HAProxy, publish
#    RATE/s (20) for DURATION s (20) through the API of the first node; once with NODES (3)
#    nodes, once with 1 node. Reports deliveries/s, p50/p99 and each node's CPU seconds per
#    delivery. (9,000, not 3 x 5,000: HAProxy holds two descriptors per proxied connection and
#    one process may open at most 20,000 files here.)
# 2. survey: SURVEY_CHANNELS (9999) channels with one subscriber each spread over the nodes;
#    SURVEY_CALLS (50) `channels` and `info` calls on the first node, p50/p99 latency.
#
# 3. scale (`scripts/bench-cluster.sh scale`, alone): NODES (5) nodes x PER_NODE (18000, at
#    most 18,000: one process holds at most 20,000 files) WebSocket connections, each subscribed
#    to its personal channel and one shared channel, straight to the nodes (no HAProxy). One
#    `pushwire bench scale --role receive` process per node; then BROADCASTS (10) publications
#    to the shared channel, one every BROADCAST_INTERVAL_MS (2000), then PERSONAL_RATE (10000)
#    personal publications/s for PERSONAL_SECS (10), both through the API of the first node.
#    Reports RSS per connection per node, connect storm time (CONNECT_RATE per receiver, 0:
#    unpaced), p50/p99 and losses of both phases, and each node's CPU per delivery, also net
#    of its idle CPU (measured for IDLE_SECS, 10, before publishing), and the load
#    generators' CPU per delivery.
#
# Needs redis-server on 127.0.0.1:6379 (scripts/services.sh), haproxy, curl, jq. Loopback only,
# bounded in count and time. Env: BIN, BUILD=0 (see bench-server.sh), OUT (report dir).
set -euo pipefail

cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/pushwire-target}"
BIN="${BIN:-$CARGO_TARGET_DIR/release/pushwire}"
SCALE_NODES="${NODES:-5}" # the scale mode's default differs
NODES="${NODES:-3}"
CONNECTIONS="${CONNECTIONS:-9000}"
RATE="${RATE:-20}"
DURATION="${DURATION:-20}"
SURVEY_CHANNELS="${SURVEY_CHANNELS:-9999}"
SURVEY_CALLS="${SURVEY_CALLS:-50}"
OUT="${OUT:-/tmp/pushwire-bench-cluster/$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$OUT"

if [[ "${BUILD:-1}" == "1" ]]; then
    cargo build --release -p pushwire-server >&2
fi
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_nodes N PREFIX: sets PORTS.
start_nodes() {
    PORTS=()
    local i port
    for ((i = 0; i < $1; i++)); do
        port="$(free_port)"
        PUSHWIRE_HTTP_API__KEY=bench \
            PUSHWIRE_HTTP_SERVER__CONNECT_RATE_PER_IP=0 \
            PUSHWIRE_HTTP_SERVER__PORT="$port" \
            PUSHWIRE_CLIENT__ALLOW_ANONYMOUS_CONNECT_WITHOUT_TOKEN=true \
            PUSHWIRE_CHANNEL__WITHOUT_NAMESPACE__ALLOW_SUBSCRIBE_FOR_ANONYMOUS=true \
            PUSHWIRE_CHANNEL__WITHOUT_NAMESPACE__ALLOW_SUBSCRIBE_FOR_CLIENT=true \
            PUSHWIRE_ENGINE__TYPE=redis \
            PUSHWIRE_ENGINE__REDIS__PREFIX="$2" \
            PUSHWIRE_NODE__NAME="node$i" \
            PUSHWIRE_LOG__LEVEL=warn \
            "$BIN" serve >"$OUT/$2-node$i.log" 2>&1 &
        PIDS+=($!)
        NODE_PIDS+=($!)
        PORTS+=("$port")
    done
    for port in "${PORTS[@]}"; do
        for _ in $(seq 1 100); do
            curl -fsS -o /dev/null "http://127.0.0.1:$port/health" && break
            sleep 0.1
        done
    done
}

# start_haproxy: balances over PORTS; sets LB.
start_haproxy() {
    LB="$(free_port)"
    local cfg="$OUT/haproxy-$LB.cfg"
    {
        printf 'global\n    maxconn 9500\n    log stderr format raw local0 err\n'
        printf 'defaults\n    mode http\n    timeout connect 2s\n    timeout client 1h\n'
        printf '    timeout server 1h\n    timeout tunnel 1h\n    maxconn 9500\n'
        printf 'frontend lb\n    bind 127.0.0.1:%s\n    default_backend nodes\n' "$LB"
        printf 'backend nodes\n    balance roundrobin\n    http-reuse never\n'
        local i=0 port
        for port in "${PORTS[@]}"; do
            printf '    server node%s 127.0.0.1:%s\n' "$i" "$port"
            i=$((i + 1))
        done
    } >"$cfg"
    haproxy -f "$cfg" -db >"$OUT/haproxy-$LB.log" 2>&1 &
    PIDS+=($!)
    HAPROXY_PID=$!
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$LB") 2>/dev/null && break
        sleep 0.1
    done
}

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# fanout NAME N: one fanout run through HAProxy in front of N fresh nodes.
fanout() {
    local name="$1" prefix
    prefix="pwbench.$name.$$"
    NODE_PIDS=()
    start_nodes "$2" "$prefix"
    start_haproxy
    local before=() p
    for p in "${NODE_PIDS[@]}"; do before+=("$(cpu_ticks "$p")"); done
    "$BIN" bench fanout --url "http://127.0.0.1:$LB" --api-url "http://127.0.0.1:${PORTS[0]}" \
        --api-key bench --connections "$CONNECTIONS" --rate "$RATE" --duration "$DURATION" \
        --channel "cluster-bench" --json >"$OUT/$name.json"
    local hz i=0 cpu deliveries
    hz="$(getconf CLK_TCK)"
    deliveries="$(jq '.deliveries.delivered' "$OUT/$name.json")"
    for p in "${NODE_PIDS[@]}"; do
        cpu=$(($(cpu_ticks "$p") - before[i]))
        echo "$name node$i cpu_s=$(echo "scale=2; $cpu / $hz" | bc)" \
            "cpu_us_per_delivery=$(echo "scale=3; $cpu * 1000000 / $hz / $deliveries" | bc)"
        i=$((i + 1))
    done
    jq -r --arg n "$name" '"\($n) established=\(.connections.established) expected=\(.deliveries.expected) lost=\(.deliveries.lost) dup=\(.deliveries.duplicates) per_sec=\(.deliveries.per_sec|floor) p50_ms=\(.latency.p50_us/1000) p99_ms=\(.latency.p99_us/1000)"' "$OUT/$name.json"
    for p in "${NODE_PIDS[@]}" "$HAPROXY_PID"; do kill "$p" 2>/dev/null || true; done
    wait "${NODE_PIDS[@]}" "$HAPROXY_PID" 2>/dev/null || true
    redis-cli --scan --pattern "$prefix.*" | xargs -r redis-cli del >/dev/null
}

# percentiles FILE: p50 and p99 of the numbers in FILE (seconds) in ms.
percentiles() {
    sort -n "$1" | awk '{ v[NR] = $1 } END {
        printf "p50_ms=%.1f p99_ms=%.1f", v[int(NR * 0.5) + 1] * 1000, v[int(NR * 0.99) + (NR * 0.99 > int(NR * 0.99))] * 1000 }'
}

survey() {
    local prefix="pwbench.survey.$$"
    NODE_PIDS=()
    start_nodes "$NODES" "$prefix"
    # One load generator per node (direct, no HAProxy: its descriptor ceiling is below 10k),
    # each holding its share of the channels, one subscriber each.
    local loads=() i=0 port
    for port in "${PORTS[@]}"; do
        "$BIN" bench channels --url "http://127.0.0.1:$port" --api-key bench \
            --connections "$((SURVEY_CHANNELS / NODES))" --channel "survey-$i" --rate 1 \
            --duration 60 --json >"$OUT/survey-load-$i.json" &
        loads+=($!)
        i=$((i + 1))
    done
    # Wait until every channel is held somewhere.
    for _ in $(seq 1 600); do
        n="$(curl -fsS -H 'X-API-Key: bench' -d '{}' "http://127.0.0.1:${PORTS[0]}/api/channels" | jq '.result.channels | length')"
        [[ "$n" -ge "$((SURVEY_CHANNELS / NODES * NODES))" ]] && break
        sleep 0.2
    done
    echo "survey: $n channels over $NODES nodes"
    local method
    for method in channels info; do
        : >"$OUT/survey-$method.txt"
        for _ in $(seq 1 "$SURVEY_CALLS"); do
            curl -fsS -o /dev/null -w '%{time_total}\n' -H 'X-API-Key: bench' -d '{}' \
                "http://127.0.0.1:${PORTS[0]}/api/$method" >>"$OUT/survey-$method.txt"
        done
        echo "survey $method ($SURVEY_CALLS calls, $n channels, $NODES nodes): $(percentiles "$OUT/survey-$method.txt")"
    done
    kill "${loads[@]}" 2>/dev/null || true
    wait "${loads[@]}" 2>/dev/null || true
    for p in "${NODE_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait "${NODE_PIDS[@]}" 2>/dev/null || true
    redis-cli --scan --pattern "$prefix.*" | xargs -r redis-cli del >/dev/null
}

# wait_files TIMEOUT_S FILE...: until every FILE exists; fails after TIMEOUT_S seconds.
wait_files() {
    local deadline=$((SECONDS + $1)) f
    shift
    for f in "$@"; do
        while [[ ! -e "$f" ]]; do
            if ((SECONDS >= deadline)); then
                echo "timed out waiting for $f" >&2
                return 1
            fi
            sleep 0.1
        done
    done
}

# cpu_all: CPU ticks of every node, space separated.
cpu_all() {
    local p out=()
    for p in "${NODE_PIDS[@]}"; do out+=("$(cpu_ticks "$p")"); done
    echo "${out[@]}"
}

# cpu_sum PID...: CPU ticks of these processes added up.
cpu_sum() {
    local p t=0
    for p in "$@"; do t=$((t + $(cpu_ticks "$p"))); done
    echo "$t"
}

# scale: the 5 x 18,000 scale run (see the header).
scale() {
    local nodes="$SCALE_NODES" per="${PER_NODE:-18000}"
    local broadcasts="${BROADCASTS:-10}" interval="${BROADCAST_INTERVAL_MS:-2000}"
    local rate="${PERSONAL_RATE:-10000}" secs="${PERSONAL_SECS:-10}"
    local connect_rate="${CONNECT_RATE:-0}" straggle="${STRAGGLER_SECS:-5}"
    local prefix="pwbench.scale.$$" channel="scale$$"
    if ((per > 18000 || nodes > 8)); then
        echo "PER_NODE must be at most 18000 and NODES at most 8" >&2
        return 1
    fi
    local report="$OUT/scale-report.txt"
    : >"$report"
    say() { echo "$*" | tee -a "$report"; }
    say "scale: $nodes nodes x $per connections, $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg) at start"
    NODE_PIDS=()
    start_nodes "$nodes" "$prefix"
    local receivers=() i t0
    rm -f "$OUT"/scale-ready-*
    t0="$(date +%s.%N)"
    for ((i = 0; i < nodes; i++)); do
        "$BIN" bench scale --role receive --url "http://127.0.0.1:${PORTS[i]}" \
            --channel "$channel" --first-index $((i * per)) --connections "$per" \
            --connect-rate "$connect_rate" --warmup 2 --duration 3600 \
            --server-pid "${NODE_PIDS[i]}" --ready-file "$OUT/scale-ready-$i" \
            >"$OUT/scale-receiver-$i.json" 2>"$OUT/scale-receiver-$i.log" &
        receivers+=($!)
        PIDS+=($!)
    done
    local ready=()
    for ((i = 0; i < nodes; i++)); do ready+=("$OUT/scale-ready-$i"); done
    wait_files 900 "${ready[@]}"
    # The ready files come after a 2 s warm-up: the storm is the receivers' own figure.
    say "all receivers ready $(printf '%.2f' "$(echo "$(date +%s.%N) - $t0 - 2" | bc)") s after start (incl. process start)," \
        "load average $(cut -d' ' -f1-3 /proc/loadavg)"
    local load_rss=0 p
    for p in "${receivers[@]}"; do load_rss=$((load_rss + $(awk '/VmRSS/ { print $2 }' "/proc/$p/status"))); done
    say "load generators: $((load_rss / 1024)) MiB RSS for $((nodes * per)) connections"

    local hz before after
    hz="$(getconf CLK_TCK)"
    local -a cpu_b cpu_p cpu_idle
    # Idle baseline: pings, pongs and node heartbeats of the held connections cost CPU in
    # every phase too; each phase's figure is also given net of it.
    local idle="${IDLE_SECS:-10}" t_phase
    before=($(cpu_all))
    sleep "$idle"
    after=($(cpu_all))
    for ((i = 0; i < nodes; i++)); do cpu_idle[i]=$((after[i] - before[i])); done
    before=($(cpu_all))
    local gen_before gen_b gen_p
    gen_before="$(cpu_sum "${receivers[@]}")"
    t_phase=$SECONDS
    "$BIN" bench scale --role publish --phase broadcast --url "http://127.0.0.1:${PORTS[0]}" \
        --api-key bench --channel "$channel" --broadcasts "$broadcasts" \
        --broadcast-interval-ms "$interval" >"$OUT/scale-publish-broadcast.json" || true
    sleep "$straggle"
    after=($(cpu_all))
    local secs_b=$((SECONDS - t_phase))
    gen_b=$(($(cpu_sum "${receivers[@]}") - gen_before))
    for ((i = 0; i < nodes; i++)); do cpu_b[i]=$((after[i] - before[i])); done
    say "after the broadcast phase: load average $(cut -d' ' -f1-3 /proc/loadavg)"
    before=($(cpu_all))
    gen_before="$(cpu_sum "${receivers[@]}")"
    t_phase=$SECONDS
    "$BIN" bench scale --role publish --phase personal --url "http://127.0.0.1:${PORTS[0]}" \
        --api-key bench --channel "$channel" --first-index 0 --connections $((nodes * per)) \
        --rate "$rate" --duration "$secs" >"$OUT/scale-publish-personal.json" || true
    sleep "$straggle"
    after=($(cpu_all))
    local secs_p=$((SECONDS - t_phase))
    gen_p=$(($(cpu_sum "${receivers[@]}") - gen_before))
    for ((i = 0; i < nodes; i++)); do cpu_p[i]=$((after[i] - before[i])); done
    say "after the personal phase: load average $(cut -d' ' -f1-3 /proc/loadavg)"

    kill -TERM "${receivers[@]}" 2>/dev/null || true
    wait "${receivers[@]}" 2>/dev/null || true
    "$BIN" bench scale --role merge --inputs "$OUT"/scale-receiver-*.json "$OUT"/scale-publish-*.json \
        | tee -a "$report" || true
    "$BIN" bench scale --role merge --json --inputs "$OUT"/scale-receiver-*.json \
        "$OUT"/scale-publish-*.json >"$OUT/scale-report.json" || true
    local db dp
    for ((i = 0; i < nodes; i++)); do
        db="$(jq '.broadcast.delivered' "$OUT/scale-receiver-$i.json")"
        dp="$(jq '.personal.delivered' "$OUT/scale-receiver-$i.json")"
        db=$((db > 0 ? db : 1)) # a phase without deliveries divides by 1
        dp=$((dp > 0 ? dp : 1))
        say "node$i cpu: idle $(echo "scale=3; ${cpu_idle[i]} / $hz / $idle" | bc) s/s;" \
            "broadcast $(echo "scale=2; ${cpu_b[i]} / $hz" | bc) s in ${secs_b} s for $db deliveries" \
            "= $(echo "scale=2; ${cpu_b[i]} * 1000000 / $hz / $db" | bc) us/delivery" \
            "($(echo "scale=2; (${cpu_b[i]} - ${cpu_idle[i]} * $secs_b / $idle) * 1000000 / $hz / $db" | bc) net of idle);" \
            "personal $(echo "scale=2; ${cpu_p[i]} / $hz" | bc) s in ${secs_p} s for $dp deliveries" \
            "= $(echo "scale=2; ${cpu_p[i]} * 1000000 / $hz / $dp" | bc) us/delivery" \
            "($(echo "scale=2; (${cpu_p[i]} - ${cpu_idle[i]} * $secs_p / $idle) * 1000000 / $hz / $dp" | bc) net of idle)"
    done
    db="$(jq '.broadcast.delivered // 0' "$OUT/scale-report.json")"
    dp="$(jq '.personal.delivered // 0' "$OUT/scale-report.json")"
    db=$((db > 0 ? db : 1))
    dp=$((dp > 0 ? dp : 1))
    say "load generators cpu: broadcast $(echo "scale=2; $gen_b / $hz" | bc) s" \
        "= $(echo "scale=2; $gen_b * 1000000 / $hz / $db" | bc) us/delivery;" \
        "personal $(echo "scale=2; $gen_p / $hz" | bc) s" \
        "= $(echo "scale=2; $gen_p * 1000000 / $hz / $dp" | bc) us/delivery"
    say "load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
    for p in "${NODE_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait "${NODE_PIDS[@]}" 2>/dev/null || true
    redis-cli --scan --pattern "$prefix.*" | xargs -r redis-cli del >/dev/null
    echo "report in $report"
}

if [[ "${1:-}" == scale ]]; then
    scale
    exit 0
fi

if [[ "${SURVEY_ONLY:-0}" != 1 ]]; then
    fanout "cluster$NODES" "$NODES"
    fanout "single" 1
fi
survey
echo "reports in $OUT"
