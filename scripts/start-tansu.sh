#!/usr/bin/env bash
# Starts tansu, a Kafka-compatible broker built from crates.io, on 127.0.0.1:9092 with memory
# storage, installing it into $HOME/.cache/tansu first when missing (slow cold on 2 cores, then
# cached). Quick when it already listens. Tests create their own topics.
# `--install-only`: install (or wait for a running install) and return without starting it.
set -euo pipefail

root="$HOME/.cache/tansu"
bin="$root/bin/tansu"

listening() { (exec 3<>/dev/tcp/127.0.0.1/9092) 2>/dev/null; }

if listening; then
    exit 0
fi
mkdir -p "$root"
# One install at a time: .ci/run starts one in the background early, and services.sh's call
# waits here for it rather than building a second copy.
exec 9>"$root/.install.lock"
flock 9
if [[ ! -x "$bin" ]]; then
    echo "start-tansu: installing tansu into $root (slow the first time)"
    # Its own target directory: the shared one would hold the workspace build lock meanwhile.
    # A test broker needs no release-grade optimisation: opt-level 1, no LTO, parallel codegen
    # and no debug info build it in a fraction of the time.
    CARGO_TARGET_DIR="$root/build" \
    CARGO_PROFILE_RELEASE_OPT_LEVEL=1 CARGO_PROFILE_RELEASE_LTO=false \
    CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 CARGO_PROFILE_RELEASE_DEBUG=false \
        cargo install tansu --locked --features dynostore --root "$root" --quiet
    rm -rf "$root/build"
fi
if [[ "${1:-}" == "--install-only" ]]; then
    exit 0
fi
nohup "$bin" broker --storage-engine memory://tansu/ \
    --listener-url tcp://127.0.0.1:9092 --advertised-listener-url tcp://127.0.0.1:9092 \
    >/tmp/tansu-broker.log 2>&1 9>&- &
for _ in $(seq 1 100); do
    listening && exit 0
    sleep 0.1
done
echo "start-tansu: tansu did not listen on 127.0.0.1:9092 within 10 s; see /tmp/tansu-broker.log" >&2
exit 1
