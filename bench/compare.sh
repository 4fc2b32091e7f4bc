#!/usr/bin/env bash
# Two builds, interleaved run by run on core 0, so a noisy machine's drift falls
# on both alike (bench/RESULTS.md compares builds only this way).
#
#   bash bench/compare.sh scan   RUNS WARDEN_A WARDEN_B [FILE]
#       `warden scan FILE` (default /tmp/m1.jsonl, from `warden-gen 1000000 1`):
#       events/s and peak RSS of each run.
#   bash bench/compare.sh engine RUNS BENCH_A BENCH_B [FILTER]
#       criterion's `engine` benchmark executables (copied out of
#       $CARGO_TARGET_DIR/release/deps/engine-* after `cargo bench --no-run` of
#       each build), FILTER defaulting to 'detectors::engine/': each
#       benchmark's median throughput.
#
# Each line: the build's file name, what was measured, the figure.
set -euo pipefail
mode=${1:?scan or engine}
runs=${2:?runs}
a=${3:?first build}
b=${4:?second build}
case $mode in
  scan)
    input=${5:-/tmp/m1.jsonl}
    for _ in $(seq "$runs"); do
      for bin in "$a" "$b"; do
        line=$(taskset -c 0 /usr/bin/time -f 'rss_kb=%M' "$bin" scan "$input" 2>&1 >/dev/null | grep -E 'events/s|rss_kb' | tr '\n' ' ')
        rate=$(sed -E 's/.*\(([0-9]+) events\/s\).*/\1/' <<<"$line")
        rss=$(sed -E 's/.*rss_kb=([0-9]+).*/\1/' <<<"$line")
        echo "$(basename "$bin") scan $rate events/s, peak RSS $((rss / 1024)) MiB"
      done
    done
    ;;
  engine)
    filter=${5:-detectors::engine/}
    # criterion keeps its history in the working directory: keep it out of the tree.
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    cd "$work"
    for _ in $(seq "$runs"); do
      for bin in "$a" "$b"; do
        taskset -c 0 "$bin" --bench --warm-up-time 1 --measurement-time 3 "$filter" 2>/dev/null |
          awk -v build="$(basename "$bin")" '/^detectors::/ {name = $1} /thrpt:/ && !/%/ {print build, name, $4, $5}'
      done
    done
    ;;
  *)
    echo "usage: compare.sh scan|engine RUNS A B [FILE|FILTER]" >&2
    exit 2
    ;;
esac
