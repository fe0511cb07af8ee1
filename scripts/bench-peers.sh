#!/usr/bin/env bash
# pushwire against its peers on the same machine (docs/benchmarks.md, "Against the peers"):
# Socket.IO 4.x (npm `socket.io`, WebSocket transport only, one room) and NATS (nats-server,
# one subject), on pushwire's two scenarios:
#   memory      idle memory per subscribed connection: server VmRSS after connect + subscribe +
#               SETTLE s, minus before, divided by the established connections (10,000)
#   fanout5000  one room/subject, 5,000 subscribers, RATE publications/s for DURATION s:
#   fanout1000  latency from the send timestamp in the payload to receipt, loss, duplicates
# Servers: `pushwire` runs pushwire's own scripts (bench-memory.sh / bench-latency.sh, the Rust
# `pushwire bench`); `socketio`, `nats` and `pushwire-node` run scripts/peers/loadgen.mjs (Node)
# against scripts/peers/socketio-server.mjs, nats-server, and pushwire itself, the last one to
# calibrate the Node load generator against the Rust bench. Every server runs pinned to core 0,
# every load generator to core 1 (taskset), a fresh server per run, loopback only. The servers
# take turns within each run. Before each run the script waits until no cargo, rustc or
# cargo-nextest process is running (10 s polls, at most WAIT_IDLE_MAX s; a run measured on a
# busy machine is marked in its log). Prints one table (median of the runs, min–max).
#
# Env overrides: RUNS (3), CASES ("memory fanout5000 fanout1000"), SERVERS ("pushwire socketio
# nats pushwire-node"), MEM_CONNECTIONS (10000), RATE (20), DURATION (20), PAYLOAD_BYTES (64),
# SETTLE (5 s, memory case; pushwire gets the same through --warmup), CONNECT_RATE (2000/s),
# WAIT_IDLE (1), WAIT_IDLE_MAX (900 s), RUN_TIMEOUT (180 s per run), OUT
# (/tmp/pushwire-bench-peers/DATE), BIN (pushwire binary; built once if missing), NATS_SERVER
# (nats-server binary), BENCH_PIN (1), MARKDOWN (1: Markdown table).
# Needs Node ≥ 20 and npm (installs scripts/peers/node_modules from package-lock.json on first
# run), nats-server (Debian: apt-get install nats-server), taskset, python3.
set -uo pipefail

cd "$(dirname "$0")/.."

RUNS="${RUNS:-3}"
CASES="${CASES:-memory fanout5000 fanout1000}"
SERVERS="${SERVERS:-pushwire socketio nats pushwire-node}"
MEM_CONNECTIONS="${MEM_CONNECTIONS:-10000}"
RATE="${RATE:-20}"
DURATION="${DURATION:-20}"
PAYLOAD_BYTES="${PAYLOAD_BYTES:-64}"
SETTLE="${SETTLE:-5}"
CONNECT_RATE="${CONNECT_RATE:-2000}"
WAIT_IDLE="${WAIT_IDLE:-1}"
WAIT_IDLE_MAX="${WAIT_IDLE_MAX:-900}"
RUN_TIMEOUT="${RUN_TIMEOUT:-180}"
BENCH_PIN="${BENCH_PIN:-1}"
OUT="${OUT:-/tmp/pushwire-bench-peers/$(date -u +%Y%m%dT%H%M%SZ)}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/pushwire-target}"
BIN="${BIN:-$CARGO_TARGET_DIR/release/pushwire}"
NATS_SERVER="${NATS_SERVER:-$(command -v nats-server || echo /usr/sbin/nats-server)}"
PEERS=scripts/peers

if ((RUNS < 1 || RUNS > 10)); then echo "RUNS must be 1..10" >&2; exit 1; fi
mkdir -p "$OUT"
ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"

SERVER_PIN=()
LOAD_PIN=()
if [[ "$BENCH_PIN" == "1" ]] && command -v taskset >/dev/null 2>&1 && [[ "$(nproc)" -ge 2 ]]; then
    SERVER_PIN=(taskset -c 0)
    LOAD_PIN=(taskset -c 1)
fi

# ---- what is missing
if [[ " $SERVERS " == *" socketio "* || " $SERVERS " == *" nats "* || " $SERVERS " == *" pushwire-node "* ]]; then
    if [[ ! -d "$PEERS/node_modules/socket.io" || ! -d "$PEERS/node_modules/nats" || ! -d "$PEERS/node_modules/ws" ]]; then
        echo "installing $PEERS/node_modules (npm ci)..." >&2
        npm ci --prefix "$PEERS" --no-audit --no-fund >&2 || exit 1
    fi
fi
if [[ " $SERVERS " == *" nats "* && ! -x "$NATS_SERVER" ]]; then
    echo "nats-server not found (NATS_SERVER=$NATS_SERVER); install it (apt-get install nats-server) or drop nats from SERVERS" >&2
    exit 1
fi
if [[ " $SERVERS " == *" pushwire"* && ! -x "$BIN" ]]; then
    echo "building release binary..." >&2
    cargo build --release -p pushwire-server >&2 || exit 1
fi

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# ---- one server at a time, started by us, stopped by its pid
SPID=""
SPORT=""
stop_server() {
    if [[ -n "$SPID" ]] && kill -0 "$SPID" 2>/dev/null; then
        kill "$SPID" 2>/dev/null
        for _ in $(seq 1 50); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$SPID" 2>/dev/null
        wait "$SPID" 2>/dev/null
    fi
    SPID=""
}
CHILD=""
# Long steps run in the background and are waited for, so that INT/TERM stop them at once.
bg_wait() {
    "$@" &
    CHILD=$!
    wait "$CHILD"
    local rc=$?
    CHILD=""
    return "$rc"
}
on_signal() {
    [[ -n "$CHILD" ]] && kill "$CHILD" 2>/dev/null && wait "$CHILD" 2>/dev/null
    exit 130
}
trap stop_server EXIT
trap on_signal INT TERM

start_server() { # KIND LOG
    local kind="$1" log="$2"
    SPORT="$(free_port)"
    case "$kind" in
    socketio) "${SERVER_PIN[@]}" node "$PEERS/socketio-server.mjs" "$SPORT" >"$log" 2>&1 & ;;
    nats) "${SERVER_PIN[@]}" "$NATS_SERVER" -a 127.0.0.1 -p "$SPORT" >"$log" 2>&1 & ;;
    pushwire-node)
        "${SERVER_PIN[@]}" env \
            PUSHWIRE_HTTP_API__KEY=bench \
            PUSHWIRE_CLIENT__TOKEN__HMAC_SECRET_KEY=bench \
            PUSHWIRE_HTTP_SERVER__CONNECT_RATE_PER_IP=0 \
            PUSHWIRE_CLIENT__ALLOW_ANONYMOUS_CONNECT_WITHOUT_TOKEN=true \
            PUSHWIRE_CHANNEL__WITHOUT_NAMESPACE__ALLOW_SUBSCRIBE_FOR_ANONYMOUS=true \
            PUSHWIRE_CHANNEL__WITHOUT_NAMESPACE__ALLOW_SUBSCRIBE_FOR_CLIENT=true \
            PUSHWIRE_HTTP_SERVER__PORT="$SPORT" \
            "$BIN" serve >"$log" 2>&1 &
        ;;
    esac
    SPID=$!
    for _ in $(seq 1 100); do
        if port_open "$SPORT"; then sleep 0.5; return 0; fi # a moment more for the idle heap to settle
        kill -0 "$SPID" 2>/dev/null || break
        sleep 0.1
    done
    echo "$kind did not listen on $SPORT; log:" >&2
    tail -n 20 "$log" >&2
    stop_server
    return 1
}

wait_idle() { # LOG: appends a line when the machine stayed busy
    [[ "$WAIT_IDLE" == "1" ]] || return 0
    local waited=0
    while pgrep -x cargo >/dev/null || pgrep -x rustc >/dev/null || pgrep -x cargo-nextest >/dev/null; do
        if ((waited >= WAIT_IDLE_MAX)); then
            echo "BUSY: cargo/rustc/cargo-nextest still running after ${WAIT_IDLE_MAX} s; measured anyway" | tee -a "$1" >&2
            return 0
        fi
        ((waited == 0)) && echo "waiting for cargo/rustc/cargo-nextest to finish..." >&2
        sleep 10
        waited=$((waited + 10))
    done
    ((waited > 0)) && echo "waited ${waited} s for an idle machine" >>"$1"
    return 0
}

run_one() { # CASE SERVER RUN
    local kase="$1" server="$2" i="$3" n scenario
    local base="$OUT/${kase}__${server}__${i}"
    local json="$base.json" log="$base.log"
    : >"$log"
    case "$kase" in
    memory) n="$MEM_CONNECTIONS" scenario=idle ;;
    fanout*) n="${kase#fanout}" scenario=fanout ;;
    *) echo "unknown case $kase" >&2; return 1 ;;
    esac
    wait_idle "$log"
    echo "load avg before: $(cut -d' ' -f1 /proc/loadavg)" >>"$log"
    if [[ "$server" == "pushwire" ]]; then
        if [[ "$scenario" == idle ]]; then
            bg_wait timeout -k 10 "$RUN_TIMEOUT" env JSON=1 BIN="$BIN" BUILD=0 BENCH_PIN="$BENCH_PIN" CONNECTIONS="$n" \
                bash scripts/bench-memory.sh --warmup "$SETTLE" --connect-rate "$CONNECT_RATE" >"$json" 2>>"$log"
        else
            bg_wait timeout -k 10 "$RUN_TIMEOUT" env JSON=1 BIN="$BIN" BUILD=0 BENCH_PIN="$BENCH_PIN" CONNECTIONS="$n" \
                RATE="$RATE" DURATION="$DURATION" PAYLOAD_BYTES="$PAYLOAD_BYTES" \
                bash scripts/bench-latency.sh --connect-rate "$CONNECT_RATE" >"$json" 2>>"$log"
        fi
    else
        start_server "$server" "$base.server.log" || return 1
        local target="$server" settle=1
        [[ "$server" == pushwire-node ]] && target=pushwire
        [[ "$scenario" == idle ]] && settle="$SETTLE"
        bg_wait timeout -k 10 "$RUN_TIMEOUT" "${LOAD_PIN[@]}" node "$PEERS/loadgen.mjs" --target "$target" \
            --port "$SPORT" --scenario "$scenario" --connections "$n" --rate "$RATE" \
            --duration "$DURATION" --payload-bytes "$PAYLOAD_BYTES" --connect-rate "$CONNECT_RATE" \
            --settle "$settle" --server-pid "$SPID" >"$json" 2>>"$log"
        echo "exit $?" >>"$log"
        stop_server
    fi
    node -e '
        const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
        const l = r.latency, d = r.deliveries, m = r.memory;
        console.log([process.argv[2], "est=" + r.connections.established, "err=" + r.connections.errors,
            m ? "B/conn=" + m.bytes_per_connection : "",
            d ? `lost=${d.lost}/${d.expected} dup=${d.duplicates}` : "",
            l ? `p50=${(l.p50_us / 1000).toFixed(1)} p99=${(l.p99_us / 1000).toFixed(1)} max=${(l.max_us / 1000).toFixed(1)} ms` : "",
            r.cpu ? `cpu server=${Math.round(r.cpu.server_pct)}% loadgen=${Math.round(r.cpu.loadgen_pct)}%` : "",
            "exit=" + r.exit_code].filter(Boolean).join(" "));
    ' "$json" "$kase $server #$i" 2>/dev/null || echo "$kase $server #$i: no report (see $log)"
}

echo "results in $OUT" >&2
for kase in $CASES; do
    for i in $(seq 1 "$RUNS"); do
        for server in $SERVERS; do
            run_one "$kase" "$server" "$i" >&2
        done
    done
done

{
    echo "node $(node --version), socket.io $(node -p 'require("./'"$PEERS"'/node_modules/socket.io/package.json").version' 2>/dev/null)," \
        "nats.js $(node -p 'require("./'"$PEERS"'/node_modules/nats/package.json").version' 2>/dev/null)," \
        "$("$NATS_SERVER" --version 2>/dev/null)"
    echo "median of $RUNS runs (min–max); memory: $MEM_CONNECTIONS connections, settle $SETTLE s; fanout: $RATE/s for $DURATION s, $PAYLOAD_BYTES-byte payload"
} >&2
if [[ "${MARKDOWN:-0}" == "1" ]]; then
    node "$PEERS/summarize.mjs" "$OUT" --markdown
else
    node "$PEERS/summarize.mjs" "$OUT"
fi
