#!/usr/bin/env bash
# Adversarial probe (issue 14, item 6): builds the release binary, starts it with the default
# limits (only anonymous access, an API key and an HMAC secret configured), runs
# scripts/probe.py against it and ends with SIGTERM while 1,000 clients are connected.
# Prints one row per case (what was sent, what came back, what docs/security.md promises).
# Loopback only; about two minutes. Env: BIN, BUILD=0, PORT (8765), OUT (report file).
set -euo pipefail

cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/pushwire-target}"
BIN="${BIN:-$CARGO_TARGET_DIR/release/pushwire}"
PORT="${PORT:-8765}"
OUT="${OUT:-/tmp/pushwire-probe-$(date -u +%Y%m%dT%H%M%SZ).md}"
if [[ "${BUILD:-1}" == "1" ]]; then
    cargo build --release -p pushwire-server >&2
fi
ulimit -n 20000 2>/dev/null || true

dir=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
cat >"$dir/probe.toml" <<CONF
[http_server]
address = "127.0.0.1"
port = $PORT

[http_api]
key = "probe-api-key"

[client]
allow_anonymous_connect_without_token = true

[client.token]
hmac_secret_key = "probe-secret"

[channel.without_namespace]
allow_subscribe_for_anonymous = true
allow_subscribe_for_client = true

[[channel.namespaces]]
name = "probe"
history_size = 100
history_ttl = "300s"
allow_subscribe_for_anonymous = true
allow_subscribe_for_client = true
allow_history_for_subscriber = true
CONF
"$BIN" serve --config "$dir/probe.toml" >"$dir/server.log" 2>&1 &
pid=$!
for _ in $(seq 100); do
    curl -fsS "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break
    sleep 0.1
done
status=0
python3 scripts/probe.py --url "http://127.0.0.1:$PORT" --api-key probe-api-key \
    --secret probe-secret --pid "$pid" --sigterm --report "$OUT" || status=$?
echo "probe: report in $OUT; server log lines: $(wc -l <"$dir/server.log")"
grep -ciE "panic" "$dir/server.log" && { echo "probe: the server panicked" >&2; status=1; }
exit "$status"
