#!/usr/bin/env bash
# The system packages the build needs besides Rust and a C compiler: OpenSSL headers and
# pkg-config for librdkafka's TLS (the Kafka consumer). Installs them from Debian when missing;
# quick when present. Run by .ci/run before the first build.
set -euo pipefail

missing=()
dpkg -s libssl-dev >/dev/null 2>&1 || missing+=(libssl-dev)
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
command -v make >/dev/null 2>&1 || missing+=(make)
((${#missing[@]} == 0)) && exit 0

echo "build-deps: installing ${missing[*]} from Debian"
sudo_if() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }
sudo_if env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null ||
    { sudo_if apt-get update -q >/dev/null &&
        sudo_if env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null; }
