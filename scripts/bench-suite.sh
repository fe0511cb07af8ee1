#!/usr/bin/env bash
# The standard benchmark set of docs/benchmarks.md: every case RUNS times (fresh server each
# run, server on core 0, bench on core 1), one summary line per run; the JSON reports and logs
# are kept in OUT. Needs jq.
#
# Env overrides: RUNS (3), OUT (/tmp/pushwire-bench/DATE), CASES (all: memory fanout fanout200
# channels connect), CHANNEL_RATE (20/s per channel), BIN and BUILD=0 (see bench-server.sh).
# Example: CASES="fanout200" RUNS=5 bash scripts/bench-suite.sh
set -uo pipefail

cd "$(dirname "$0")/.."

RUNS="${RUNS:-3}"
OUT="${OUT:-/tmp/pushwire-bench/$(date -u +%Y%m%dT%H%M%SZ)}"
CASES="${CASES:-memory fanout fanout200 channels connect}"
mkdir -p "$OUT"

summary() {
    jq -r --arg name "$1" '[
        $name, .connections.established, .connections.errors, .connections.dropped,
        (.deliveries.expected // "-"), (.deliveries.lost // "-"), (.deliveries.duplicates // "-"),
        (.deliveries.per_sec // 0 | floor),
        ((.latency.p50_us // 0) / 1000), ((.latency.p90_us // 0) / 1000),
        ((.latency.p99_us // 0) / 1000), ((.latency.p999_us // 0) / 1000),
        ((.latency.max_us // 0) / 1000),
        (.connections.per_sec | floor), (.connections.latency.p99_us / 1000),
        (.reconnect.secs // "-"), (.reconnect.reconnected // "-"),
        (.memory.bytes_per_connection // "-"),
        .machine.load_avg_start, .machine.load_avg_end, .exit_code
    ] | @tsv' "$2"
}

# run NAME SCRIPT [VAR=VALUE ...]
run() {
    local name="$1" script="$2" i
    shift 2
    for i in $(seq 1 "$RUNS"); do
        env JSON=1 "$@" bash "scripts/$script" >"$OUT/$name-$i.json" 2>"$OUT/$name-$i.log"
        summary "$name#$i" "$OUT/$name-$i.json" || echo "$name#$i: no report (see $OUT/$name-$i.log)"
    done
}

printf 'case\testab\terr\tdrop\texpected\tlost\tdup\tdeliv/s\tp50ms\tp90ms\tp99ms\tp999ms\tmaxms\tconn/s\tconn_p99ms\treconn_s\treconn\tB/conn\tload0\tload1\texit\n'
for c in $CASES; do
    case "$c" in
    memory) run memory-10k bench-memory.sh CONNECTIONS=10000 ;;
    fanout)
        for n in 1000 2000 5000; do
            run "fanout-$n-x20" bench-latency.sh CONNECTIONS=$n RATE=20 DURATION=20
        done
        ;;
    fanout200) run fanout-5000-x200 bench-latency.sh CONNECTIONS=5000 RATE=200 DURATION=20 ;;
    channels)
        for n in 1000 5000; do
            run "channels-$n-x${CHANNEL_RATE:-20}" bench-latency.sh SCENARIO=channels \
                CONNECTIONS=$n RATE="${CHANNEL_RATE:-20}" DURATION=20
        done
        ;;
    connect) run connect-10k bench-connect.sh CONNECTIONS=10000 ;;
    *) echo "unknown case $c" >&2 ;;
    esac
done
echo "reports in $OUT" >&2
