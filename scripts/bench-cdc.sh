#!/usr/bin/env bash
# Change streams, commit → subscriber: changes/s and p50/p99 latency of the postgresql_cdc,
# mysql_cdc (MariaDB) and mqtt (3.1.1 and 5) consumers, from the row's COMMIT (the MQTT
# PUBLISH) to a WebSocket subscriber's receive. Starts the services it needs
# (scripts/services.sh, without tansu), builds the release test binary and runs the ignored
# benchmark crates/pushwire-server/tests/consumers/cdc_bench.rs, then prints its lines and the
# Markdown table rows (the figures in docs/benchmarks.md come from this script).
#
# Env: N (changes in the throughput phase, 20000), RATE (changes/s in the steady phase, 500),
# SECONDS_STEADY (length of the steady phase, 10), ONLY (run only the sources whose label
# contains it, e.g. postgresql), CARGO_TARGET_DIR
# ($HOME/.cache/pushwire-target).
set -euo pipefail

cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/pushwire-target}"
export PUSHWIRE_CDC_BENCH_N="${N:-20000}"
export PUSHWIRE_CDC_BENCH_RATE="${RATE:-500}"
export PUSHWIRE_CDC_BENCH_SECONDS="${SECONDS_STEADY:-10}"
export PUSHWIRE_CDC_BENCH_ONLY="${ONLY:-}"

PUSHWIRE_SKIP_KAFKA=1 bash scripts/services.sh

log=$(mktemp /tmp/pushwire-bench-cdc.XXXXXX)
cargo test --release --locked -p pushwire-server --test consumers cdc_bench:: -- \
    --ignored --nocapture --test-threads 1 2>&1 | tee "$log" | grep -oE 'CDC (BENCH|TABLE).*|test result.*|panicked.*'
grep -q 'test result: ok. 1 passed' "$log" || {
    echo "bench-cdc: the benchmark failed; full output in $log" >&2
    exit 1
}
echo "bench-cdc: machine: $(nproc) cores, $(uname -r); full output in $log"
