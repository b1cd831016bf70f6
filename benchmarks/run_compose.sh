#!/usr/bin/env bash
# Wordcount and k-means on the docker-compose cluster (3 workers of 1 core) next to local[2]
# and local-cluster[3,1], and the time from `docker-compose up` to the end of a first job.
# Appends one JSON object per run to OUT. Needs the release build of flint and flint-examples,
# Docker with docker-compose, and in DATA: words_50MB.txt (benchmarks/gen_words.py) and
# kmeans_100000x20.csv (../shared/peers/gen_data.py); DATA is mounted in the containers at the
# same path.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-/var/tmp/flint-bench-data}
OUT=${OUT:-benchmarks/runs/compose.jsonl}
REPS=${REPS:-3}
T=${CARGO_TARGET_DIR:-target}/release
export FLINT_IMAGE=${FLINT_IMAGE:-flint:bench} FLINT_DATA=$DATA FLINT_WORKER_CORES=1
export FLINT_MASTER_PORT=${FLINT_MASTER_PORT:-17077} FLINT_WEB_PORT=${FLINT_WEB_PORT:-18080}
export FLINT_PROGRESS=false
compose() { docker-compose -p flintbench -f docker/docker-compose.yml "$@"; }

elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

emit() { # name, master label, then a command printing one JSON line last
  local name=$1 master=$2; shift 2
  local start end line
  start=$(date +%s.%N)
  line=$("$@" | tail -n 1)
  end=$(date +%s.%N)
  echo "{\"bench\":\"$name\",\"master\":\"$master\",\"wall_s\":$(elapsed "$start" "$end"),\"result\":$line}" | tee -a "$OUT"
}

docker/build-image.sh
trap 'compose down -v --timeout 10 >/dev/null 2>&1 || true' EXIT
head -c 100000 "$DATA/words_50MB.txt" > "$DATA/first.txt"
start=$(date +%s.%N)
compose up -d --scale worker=3 2>/dev/null
URL=flint://127.0.0.1:$FLINT_MASTER_PORT
# The first job waits for the master and workers to come up (flint-submit retries nothing:
# wait until the master answers).
until "$T/flint-submit" --master "$URL" --status >/dev/null 2>&1; do sleep 0.1; done
"$T/flint-submit" --master "$URL" "$T/wordcount" -- "$DATA/first.txt" --json >/dev/null
end=$(date +%s.%N)
echo "{\"bench\":\"compose_up_to_first_job\",\"master\":\"compose 3 workers\",\"wall_s\":$(elapsed "$start" "$end")}" | tee -a "$OUT"

submit() { "$T/flint-submit" --master "$URL" --total-executor-cores 3 "$@"; }
for rep in $(seq "$REPS"); do
  emit wordcount_50MB "compose 3x1" submit "$T/wordcount" -- "$DATA/words_50MB.txt" --json
  emit wordcount_50MB "local[2]" "$T/wordcount" "$DATA/words_50MB.txt" --json --master 'local[2]'
  emit wordcount_50MB "local-cluster[3,1]" "$T/wordcount" "$DATA/words_50MB.txt" --json --master 'local-cluster[3,1]'
  km=("$DATA/kmeans_100000x20.csv" --k 10 --iters 20 --tol 0 --init random --json)
  emit kmeans_100kx20 "compose 3x1" submit "$T/kmeans" -- "${km[@]}"
  emit kmeans_100kx20 "local[2]" "$T/kmeans" "${km[@]}" --master 'local[2]'
  emit kmeans_100kx20 "local-cluster[3,1]" "$T/kmeans" "${km[@]}" --master 'local-cluster[3,1]'
done
