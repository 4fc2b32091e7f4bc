#!/usr/bin/env bash
# `warden scan` over a generated 1,000,000-event mixed stream, pinned to one core.
# Prints the median of RUNS runs (events/s) and peak RSS. Usage: bash bench/scan.sh [RUNS]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
runs=${1:-5}
cargo build --release -q -p warden -p warden-bench --manifest-path "$repo/Cargo.toml"
input=$(mktemp --suffix=.jsonl)
trap 'rm -f "$input"' EXIT
"$target/release/warden-gen" 1000000 1 > "$input"
rates=()
for _ in $(seq "$runs"); do
  line=$(taskset -c 0 /usr/bin/time -f 'rss_kb=%M' "$target/release/warden" scan "$input" 2>&1 >/dev/null | grep -E 'events/s|rss_kb' | tr '\n' ' ')
  rate=$(sed -E 's/.*\(([0-9]+) events\/s\).*/\1/' <<<"$line")
  rss=$(sed -E 's/.*rss_kb=([0-9]+).*/\1/' <<<"$line")
  echo "run: $rate events/s, peak RSS $((rss / 1024)) MiB"
  rates+=("$rate")
done
median=$(printf '%s\n' "${rates[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
echo "median: $median events/s over $runs runs (1,000,000 events, taskset -c 0)"
