#!/usr/bin/env bash
# Starts tansu, a Kafka-compatible broker built from crates.io, on 127.0.0.1:9092 with memory
# storage, installing it into $HOME/.cache/tansu first when missing (15-25 min cold on 2 cores,
# then cached). Quick when it already listens. Tests create their own topics.
set -euo pipefail

root="$HOME/.cache/tansu"
bin="$root/bin/tansu"

listening() { (exec 3<>/dev/tcp/127.0.0.1/9092) 2>/dev/null; }

if listening; then
    exit 0
fi
if [[ ! -x "$bin" ]]; then
    echo "start-tansu: installing tansu into $root (slow the first time)"
    # Its own target directory: the shared one would hold the workspace build lock meanwhile.
    CARGO_TARGET_DIR="$root/build" cargo install tansu --locked --features dynostore --root "$root" --quiet
    rm -rf "$root/build"
fi
nohup "$bin" broker --storage-engine memory://tansu/ \
    --listener-url tcp://127.0.0.1:9092 --advertised-listener-url tcp://127.0.0.1:9092 \
    >/tmp/tansu-broker.log 2>&1 &
for _ in $(seq 1 100); do
    listening && exit 0
    sleep 0.1
done
echo "start-tansu: tansu did not listen on 127.0.0.1:9092 within 10 s; see /tmp/tansu-broker.log" >&2
exit 1
