#!/usr/bin/env bash
# The cost of losing an executor in a wordcount: runs `wordcount INPUT --master MASTER --json`
# REPS times without a failure and REPS times with one executor process SIGKILLed DELAY seconds
# after the start (a child of the driver, found with pgrep -P), and appends one JSON object per
# run to OUT. See BENCHMARKS.md ("local-cluster").
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-/tmp/peers-data}
OUT=${OUT:-benchmarks/runs/flint-cluster.jsonl}
REPS=${REPS:-3}
MASTER=${MASTER:-local-cluster[2,1]}
DELAY=${DELAY:-1.5}
BIN=${BIN:-target/release}
INPUT=${INPUT:-$DATA/words_200MB.txt}

run() { # kill? (0|1)
  local start end out killed=0
  out=$(mktemp)
  start=$(date +%s.%N)
  "$BIN/wordcount" "$INPUT" --master "$MASTER" --json > "$out" &
  local driver=$!
  if [ "$1" = 1 ]; then
    sleep "$DELAY"
    local victim
    victim=$(pgrep -P "$driver" | head -n 1 || true)
    if [ -n "$victim" ]; then kill -9 "$victim" && killed=1; fi
  fi
  wait "$driver"
  end=$(date +%s.%N)
  local wall
  wall=$(echo "$end - $start" | bc)
  echo "{\"bench\":\"wordcount_executor_killed\",\"master\":\"$MASTER\",\"kill\":$1,\"killed\":$killed,\"delay_s\":$DELAY,\"wall_s\":$wall,\"result\":$(tail -n 1 "$out")}" | tee -a "$OUT"
  rm -f "$out"
}

for rep in $(seq "$REPS"); do
  run 0
  run 1
done
