#!/usr/bin/env bash
# Sourced by the release-build benchmark scripts (bench-proxy.sh, bench-lifecycle.sh): the
# preamble they share. Loopback only.
#   bench_init NAME   cd to the repository, set CARGO_TARGET_DIR, BIN (default the release
#                     binary), OUT (default /tmp/pushwire-bench-NAME/<UTC stamp>, created);
#                     build the release server unless BUILD=0; raise the open-file limit to
#                     20,000 (the project's per-process bound); kill every PID in PIDS on exit.
#   free_port         a free TCP port on 127.0.0.1.
#   wait_tcp PORT     until something listens on 127.0.0.1:PORT (at most 10 s).
#   wait_http URL     until URL answers 2xx (at most 10 s).
#   serve_node CFG LOG PORT
#                     `$BIN serve --config CFG` in the background (output to LOG), its pid in
#                     PIDS and NODE_PID, waits for /health on PORT.
#   stop_node PID     kills a node started by serve_node and waits for it.

PIDS=()

bench_init() {
    cd "$(dirname "${BASH_SOURCE[0]}")/.."
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/pushwire-target}"
    BIN="${BIN:-$CARGO_TARGET_DIR/release/pushwire}"
    OUT="${OUT:-/tmp/pushwire-bench-$1/$(date -u +%Y%m%dT%H%M%SZ)}"
    mkdir -p "$OUT"
    if [[ "${BUILD:-1}" == "1" ]]; then
        cargo build --release -p pushwire-server >&2
    fi
    ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
    trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true' EXIT
}

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

wait_tcp() {
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
}

wait_http() {
    for _ in $(seq 1 100); do
        curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
        sleep 0.1
    done
}

serve_node() {
    "$BIN" serve --config "$1" >"$2" 2>&1 &
    NODE_PID=$!
    PIDS+=("$NODE_PID")
    wait_http "http://127.0.0.1:$3/health"
}

stop_node() {
    kill "$1"
    wait "$1" 2>/dev/null || true
}
