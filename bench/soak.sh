#!/usr/bin/env bash
# Soak warden through a real broker (tansu) at ~80% of its measured throughput,
# attack bursts mixed in; checks steady RSS, bounded lag and complete detections.
# Usage: bash bench/soak.sh [SECS=600] [FRACTION=0.8]   (CI runs: bash bench/soak.sh 60)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=.ci/setup.sh
source "$repo/.ci/setup.sh" >/dev/null
cargo build --release -q -p warden -p warden-bench --manifest-path "$repo/Cargo.toml"
exec "$CARGO_TARGET_DIR/release/warden-soak" "${1:-600}" "${2:-0.8}"
