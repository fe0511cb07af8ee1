#!/usr/bin/env bash
# Regenerates docs/admin.png: the admin page in headless Chromium while some subscribers and
# publications flow. Runs the admin browser test (crates/pushwire-server/tests/api/admin.rs) with
# PUSHWIRE_ADMIN_SCREENSHOT set; needs scripts/setup-browser.sh first.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-$PWD/docs/admin.png}"
PUSHWIRE_ADMIN_SCREENSHOT="$out" cargo nextest run -p pushwire-server --test api \
    -E 'test(chromium_admin_page)' --no-capture
echo "admin-screenshot: wrote $out"
