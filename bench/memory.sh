#!/usr/bin/env bash
# `warden scan` held to memory budgets over the issue's two key floods, pinned to
# one core: 2,000,000 mostly distinct visitors of one tenant over an hour, and
# 200,000 sessions of one tenant in five minutes (400,000 events). For each
# budget prints events/s, peak RSS, keys in memory and spilled, and checks the
# records are byte-identical to an unbounded scan's.
# Usage: bash bench/memory.sh [BUDGETS_MB...]   (default: 64 128 256 512)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
budgets=("${@:-64 128 256 512}")
read -r -a budgets <<<"${budgets[*]}"
cargo build --release -q -p warden -p warden-bench --manifest-path "$repo/Cargo.toml"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$target/release/warden-gen" 2000000 1 --tenants 1 --subjects 100000000 > "$work/visitors.jsonl"
"$target/release/warden-gen" 400000 2 --tenants 1 --subjects 200000 --span-ms 300000 > "$work/sessions.jsonl"

measure() { # config stream label
  local out="$work/$3.out"
  local err
  err=$(taskset -c 0 /usr/bin/time -f 'rss_kb=%M' "$target/release/warden" scan --config "$1" "$work/$2.jsonl" 2>&1 >"$out" | grep -v WARN)
  local rate rss state
  rate=$(sed -nE 's/.*\(([0-9]+) events\/s\).*/\1/p' <<<"$err")
  rss=$(sed -nE 's/.*rss_kb=([0-9]+).*/\1/p' <<<"$err")
  state=$(sed -nE 's/.*state at the end: (.*)/\1/p' <<<"$err")
  echo "  $3: $rate events/s, peak RSS $((rss / 1024)) MiB; $state"
}

for stream in visitors sessions; do
  echo "== $stream"
  printf '[state]\nmemory_budget_mb = 1000000\ntenant_key_quota = 0\n' > "$work/free.toml"
  measure "$work/free.toml" "$stream" "$stream-unbounded"
  for mb in "${budgets[@]}"; do
    printf '[state]\nmemory_budget_mb = %s\n' "$mb" > "$work/b$mb.toml"
    measure "$work/b$mb.toml" "$stream" "$stream-$mb"
    if cmp -s "$work/$stream-$mb.out" "$work/$stream-unbounded.out"; then
      echo "    records identical to the unbounded scan"
    else
      echo "    RECORDS DIFFER from the unbounded scan"; exit 1
    fi
  done
done
