#!/usr/bin/env bash
# Bounded fuzzing of the decoders that read untrusted bytes (fuzz/): JSON and protobuf command
# frames, /emulation bodies, and the JWT path. Installs cargo-fuzz into $FUZZ_ROOT when it is
# missing, builds every target, runs each for its share of FUZZ_SECONDS and fails on the first
# crash (the input is kept in fuzz/artifacts/<target>/; replay it with
# `cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run -s none <target> artifacts/<target>/<file>`).
#
# cargo-fuzz passes nightly-only flags; the toolchain here is stable, which accepts them with
# RUSTC_BOOTSTRAP=1 (set for this script only, never for the normal build).
#
# Env: FUZZ_SECONDS (90, total run time, split evenly), FUZZ_TARGETS (all four),
# FUZZ_SANITIZER (none; `address` for ASan, slower), FUZZ_ROOT ($HOME/.cache/cargo-fuzz).
# New inputs found go to a scratch directory; the committed seed corpus (fuzz/corpus/<target>)
# is only read. Keep a new interesting input by copying it there.
set -euo pipefail

cd "$(dirname "$0")/.."
FUZZ_SECONDS="${FUZZ_SECONDS:-90}"
FUZZ_TARGETS="${FUZZ_TARGETS:-json_frame protobuf_frame emulation_body jwt}"
FUZZ_SANITIZER="${FUZZ_SANITIZER:-none}"
FUZZ_ROOT="${FUZZ_ROOT:-$HOME/.cache/cargo-fuzz}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/pushwire-target}"
export RUSTC_BOOTSTRAP=1
export PATH="$FUZZ_ROOT/bin:$PATH"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz into $FUZZ_ROOT"
    # Its own target directory: the shared one would hold the workspace build lock meanwhile.
    CARGO_TARGET_DIR="$FUZZ_ROOT/build" cargo install cargo-fuzz --locked --root "$FUZZ_ROOT"
    rm -rf "$FUZZ_ROOT/build"
fi

read -r -a targets <<<"$FUZZ_TARGETS"
per=$((FUZZ_SECONDS / ${#targets[@]}))
((per >= 1)) || per=1

cd fuzz
fuzz_target_dir="$CARGO_TARGET_DIR/fuzz"
host="$(rustc -vV | sed -n 's/^host: //p')"
echo "fuzz: building ${targets[*]} ($(cargo fuzz --version), sanitizer $FUZZ_SANITIZER)"
cargo fuzz build -s "$FUZZ_SANITIZER" --target-dir "$fuzz_target_dir"

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for t in "${targets[@]}"; do
    [[ -d "corpus/$t" ]] || { echo "fuzz: no seed corpus fuzz/corpus/$t" >&2; exit 1; }
    mkdir -p "$scratch/$t"
    echo "fuzz: $t for ${per}s"
    mkdir -p "artifacts/$t"
    # The binaries built above, run directly (`cargo fuzz run` would build again). libFuzzer
    # writes new inputs to the first directory only: the scratch one.
    if ! "$fuzz_target_dir/$host/release/$t" "$scratch/$t" "corpus/$t" \
        -artifact_prefix="artifacts/$t/" -max_total_time="$per" -timeout=10 \
        -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 2>"$scratch/$t.log"; then
        tail -n 40 "$scratch/$t.log" >&2
        echo "fuzz: $t found a crash; the input is in fuzz/artifacts/$t/" >&2
        exit 1
    fi
    grep -E '^(Done|stat::number_of_executed_units|stat::new_units_added)' "$scratch/$t.log" || true
done
echo "fuzz: ${targets[*]}: no crash in ${FUZZ_SECONDS}s"
