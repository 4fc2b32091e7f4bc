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
# Each line: A or B, the build's path, what was measured, the figure.
set -uo pipefail
mode=${1:?scan or engine}
runs=${2:?runs}
a=$(realpath "${3:?first build}") || exit 2
b=$(realpath "${4:?second build}") || exit 2
case $mode in
  scan)
    input=$(realpath "${5:-/tmp/m1.jsonl}") || exit 2
    for _ in $(seq "$runs"); do
      for label in A B; do
        bin=$a
        [ "$label" = B ] && bin=$b
        line=$(taskset -c 0 /usr/bin/time -f 'rss_kb=%M' "$bin" scan "$input" 2>&1 >/dev/null | grep -E 'events/s|rss_kb' | tr '\n' ' ')
        if ! grep -q 'events/s' <<<"$line"; then
          echo "$label $bin scan failed: $line" >&2
          exit 1
        fi
        rate=$(sed -E 's/.*\(([0-9]+) events\/s\).*/\1/' <<<"$line")
        rss=$(sed -E 's/.*rss_kb=([0-9]+).*/\1/' <<<"$line")
        echo "$label $bin scan $rate events/s, peak RSS $((rss / 1024)) MiB"
      done
    done
    ;;
  engine)
    filter=${5:-detectors::engine/}
    # criterion keeps its history under CRITERION_HOME (else the target
    # directory): a scratch one, so neither build's runs become the other's baseline.
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    export CRITERION_HOME=$work
    cd "$work" || exit 2
    for _ in $(seq "$runs"); do
      for label in A B; do
        bin=$a
        [ "$label" = B ] && bin=$b
        out=$(taskset -c 0 "$bin" --bench --warm-up-time 1 --measurement-time 3 "$filter" 2>&1) || {
          echo "$label $bin failed: $(tail -n 3 <<<"$out")" >&2
          exit 1
        }
        awk -v build="$label $bin" '/^[a-z_]+::/ {name = $1} /thrpt:/ && !/%/ {print build, name, $4, $5}' <<<"$out"
      done
    done
    ;;
  *)
    echo "usage: compare.sh scan|engine RUNS A B [FILE|FILTER]" >&2
    exit 2
    ;;
esac
