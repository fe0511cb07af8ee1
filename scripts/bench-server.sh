# Shared by the bench-*.sh scripts (sourced, not run): builds the release binary, raises the
# open-file limit to 20000, starts `pushwire serve` on a free loopback port with anonymous
# subscribers, the API key `bench`, the HMAC secret `bench` (for signed-token runs) and no
# per-IP connect rate limit (every bench connection comes from 127.0.0.1), waits
# for /health, and stops it on exit. Sets BIN, PORT, SERVER_PID, BENCH_PIN_CMD (taskset prefix
# for the bench when BENCH_PIN=1) and EXTRA (--json when JSON=1, --html FILE when HTML=FILE).
# BIN=path runs another binary; BUILD=0 skips the build (a frozen binary for a series of runs);
# BENCH_BIN=path runs the load generator from another binary than the server (A/B runs of two
# server builds under one bench); SERVER_CONFIG=file adds `--config file`.

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/pushwire-target}"
BIN="${BIN:-$CARGO_TARGET_DIR/release/pushwire}"
BENCH_BIN="${BENCH_BIN:-$BIN}"

free_port() {
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
        return
    fi
    local port
    for _ in $(seq 1 100); do
        port=$((20000 + RANDOM % 20000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return
        fi
    done
    echo "no free port found" >&2
    return 1
}

health_ok() {
    if command -v curl >/dev/null 2>&1; then
        curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$1/health" 2>/dev/null
    else
        exec 3<>"/dev/tcp/127.0.0.1/$1" 2>/dev/null || return 1
        printf 'GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3
        local status
        IFS= read -r -t 1 status <&3 || true
        exec 3>&-
        [[ "$status" == *" 200 "* ]]
    fi
}

SERVER_PIN=()
BENCH_PIN_CMD=()
if [[ "$BENCH_PIN" == "1" ]] && command -v taskset >/dev/null 2>&1 && [[ "$(nproc)" -ge 2 ]]; then
    SERVER_PIN=(taskset -c 0)
    BENCH_PIN_CMD=(taskset -c 1)
fi

ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)"

if [[ "${BUILD:-1}" == "1" ]]; then
    echo "building release binary..." >&2
    cargo build --release -p pushwire-server >&2
fi

PORT="$(free_port)"
SERVER_LOG="$(mktemp -t pushwire-bench-server.XXXXXX.log)"
SERVER_PID=""

cleanup() {
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -f "$SERVER_LOG"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"${SERVER_PIN[@]}" env \
    PUSHWIRE_HTTP_API__KEY=bench \
    PUSHWIRE_CLIENT__TOKEN__HMAC_SECRET_KEY=bench \
    PUSHWIRE_HTTP_SERVER__CONNECT_RATE_PER_IP=0 \
    PUSHWIRE_CLIENT__ALLOW_ANONYMOUS_CONNECT_WITHOUT_TOKEN=true \
    PUSHWIRE_CHANNEL__WITHOUT_NAMESPACE__ALLOW_SUBSCRIBE_FOR_ANONYMOUS=true \
    PUSHWIRE_CHANNEL__WITHOUT_NAMESPACE__ALLOW_SUBSCRIBE_FOR_CLIENT=true \
    PUSHWIRE_HTTP_SERVER__PORT="$PORT" \
    "$BIN" serve ${SERVER_CONFIG:+--config "$SERVER_CONFIG"} >"$SERVER_LOG" 2>&1 &
SERVER_PID=$!

for _ in $(seq 1 100); do
    if health_ok "$PORT"; then
        break
    fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        echo "server exited early; log:" >&2
        cat "$SERVER_LOG" >&2
        exit 1
    fi
    sleep 0.1
done
if ! health_ok "$PORT"; then
    echo "server did not answer /health on port $PORT within 10 s; log:" >&2
    tail -n 50 "$SERVER_LOG" >&2
    exit 1
fi
echo "server pid $SERVER_PID on port $PORT" >&2

EXTRA=()
if [[ "$JSON" == "1" ]]; then
    EXTRA+=(--json)
fi
if [[ -n "${HTML:-}" ]]; then
    EXTRA+=(--html "$HTML")
fi

