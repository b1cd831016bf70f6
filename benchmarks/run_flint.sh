#!/usr/bin/env bash
# Runs flint's side of the peer benchmarks (see BENCHMARKS.md) and appends one JSON object per
# run to OUT (default benchmarks/runs/flint.jsonl). Run on an idle machine, after
# `cargo build --release -p flint-examples`, with the peer data in DATA (default /tmp/peers-data,
# made by ../shared/peers/gen_data.py).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-/tmp/peers-data}
OUT=${OUT:-benchmarks/runs/flint.jsonl}
REPS=${REPS:-3}
BIN=target/release
MASTER=${MASTER:-local[2]}
SHUFFLE_N=${SHUFFLE_N:-20000000}   # records of the sort and group cases
MEMORY_CASES=${MEMORY_CASES:-1}     # 0 skips the aggregation-under-a-memory-limit cases

emit() { # name, then a command printing one JSON line; adds wall time and peak RSS
  local name=$1; shift
  local tfile; tfile=$(mktemp)
  local line
  line=$(/usr/bin/time -f '%e %M' -o "$tfile" "$@" | tail -n 1)
  read -r wall rss_kb < "$tfile"; rm -f "$tfile"
  echo "{\"bench\":\"$name\",\"master\":\"$MASTER\",\"wall_s\":$wall,\"peak_rss_kb\":$rss_kb,\"result\":$line}" | tee -a "$OUT"
}

for rep in $(seq "$REPS"); do
  emit wordcount "$BIN/wordcount" "$DATA/words_200MB.txt" --master "$MASTER" --json
  emit wordcount_local_combine "$BIN/wordcount" "$DATA/words_200MB.txt" --master "$MASTER" --json --local-combine
done
emit tiny_job_latency "$BIN/microbench" latency --n 500 --reps 1 --master "$MASTER"
for rep in $(seq "$REPS"); do
  emit empty_tasks "$BIN/microbench" tasks --n 100000 --master "$MASTER"
done
for case in sort group; do
  for rep in $(seq "$REPS"); do
    emit "shuffle_$case" "$BIN/microbench" "$case" --n "$SHUFFLE_N" --master "$MASTER"
  done
done
[ "$MEMORY_CASES" = 1 ] || exit 0
# An aggregation whose state (10M distinct keys) is far larger than a 64 MiB limit.
emit aggregate_4x_limit "$BIN/microbench" aggregate --n 20000000 --memory-limit 64m --master "$MASTER"
emit aggregate_no_limit "$BIN/microbench" aggregate --n 20000000 --memory-limit 4g --master "$MASTER"
