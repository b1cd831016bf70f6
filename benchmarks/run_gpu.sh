#!/usr/bin/env bash
# mllib on a GPU (BENCHMARKS.md, issue 6): the kernels' achieved bandwidth on one large block,
# then k-means 2M x 20 (k=10, 20 iterations) and logistic regression 1M x 50 end to end with
# --device gpu and --device cpu. Appends one JSON object per run to OUT and prints a summary.
#
# Run on an idle machine with a GPU and its Vulkan driver (NVIDIA: the proprietary driver's
# Vulkan ICD; `vulkaninfo --summary` lists it), with the peer data in DATA
# (../shared/peers/gen_data.py --only kmeans,logreg). PEAK_GBPS (the card's memory bandwidth in
# GB/s, e.g. 4800 for an H200, 3350 for an H100 SXM, 1008 for an RTX 4090) adds the fraction of
# peak. On a machine without a GPU, DEVICE_OK_SOFTWARE=1 lets it run on lavapipe (correctness
# only; use the 100k-row data: SIZE=small).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-/tmp/peers-data}
OUT=${OUT:-benchmarks/runs/gpu.jsonl}
REPS=${REPS:-2}
MASTER=${MASTER:-local[2]}
SIZE=${SIZE:-large}
PEAK_GBPS=${PEAK_GBPS:-}
KERNEL_ROWS=${KERNEL_ROWS:-4194304}   # 4M x 50 f32 = 800 MB: large enough to stream
KERNEL_COLS=${KERNEL_COLS:-50}
GPU_BLOCK_ROWS=${GPU_BLOCK_ROWS:-262144} # one dispatch per block and pass: big blocks on a GPU
export FLINT_STORAGE_MEMORY=${FLINT_STORAGE_MEMORY:-6g}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
BIN=$CARGO_TARGET_DIR/release

if [ "$SIZE" = small ]; then
  KMEANS=$DATA/kmeans_100000x20.csv; LOGREG=$DATA/logreg_100000x50.csv
else
  KMEANS=$DATA/kmeans_2000000x20.csv; LOGREG=$DATA/logreg_1000000x50.csv
fi

command -v vulkaninfo >/dev/null && vulkaninfo --summary 2>/dev/null | grep -E "deviceName|deviceType|driverName" || true
cargo build --release --locked -p flint-examples --bin mlkernels --bin kmeans --bin logreg

# Which adapter `gpu` gets here; refuse a software one unless asked (its timings mean nothing).
adapter=$("$BIN/mlkernels" --device gpu --rows 1024 --cols 4 --calls 1 --json | head -n 1 \
  | python3 -c 'import json,sys; print(json.loads(sys.stdin.read())["device"])')
echo "GPU adapter: $adapter"
case "$adapter" in
  *", Cpu)"*)
    if [ "${DEVICE_OK_SOFTWARE:-0}" != 1 ]; then
      echo "run_gpu.sh: the only adapter is a software one ($adapter); set DEVICE_OK_SOFTWARE=1 to time it anyway" >&2
      exit 1
    fi ;;
esac

emit() { # name, then a command printing JSON line(s); wraps each with wall time and peak RSS
  local name=$1; shift
  local tfile; tfile=$(mktemp)
  local lines
  lines=$(/usr/bin/time -f '%e %M' -o "$tfile" "$@")
  read -r wall rss_kb < "$tfile"; rm -f "$tfile"
  while IFS= read -r line; do
    case "$line" in
      "{"*) echo "{\"bench\":\"$name\",\"master\":\"$MASTER\",\"wall_s\":$wall,\"peak_rss_kb\":$rss_kb,\"result\":$line}" | tee -a "$OUT" ;;
    esac
  done <<< "$lines"
}

# Kernels: seconds per call and GB/s of reading the block (f32 on the GPU, f64 on one CPU core).
emit "kernels_gpu_${KERNEL_ROWS}x${KERNEL_COLS}" "$BIN/mlkernels" --device gpu --rows "$KERNEL_ROWS" --cols "$KERNEL_COLS" --calls 20 --json
emit "kernels_cpu_${KERNEL_ROWS}x${KERNEL_COLS}" "$BIN/mlkernels" --device cpu --rows "$KERNEL_ROWS" --cols "$KERNEL_COLS" --calls 3 --json

for rep in $(seq "$REPS"); do
  for dev in gpu cpu; do
    blocks=(); [ "$dev" = gpu ] && blocks=(--block-rows "$GPU_BLOCK_ROWS")
    emit "kmeans_${SIZE}_random_$dev" "$BIN/kmeans" "$KMEANS" --k 10 --iters 20 --tol 0 --init random \
      --seed 42 --device "$dev" "${blocks[@]}" --master "$MASTER" --json
    emit "kmeans_${SIZE}_kmeans-parallel_$dev" "$BIN/kmeans" "$KMEANS" --k 10 --iters 20 --tol 0 \
      --init kmeans-parallel --seed 42 --device "$dev" "${blocks[@]}" --master "$MASTER" --json
    emit "logreg_${SIZE}_reg0_$dev" "$BIN/logreg" "$LOGREG" --iters 100 --tol 0 --reg 0 \
      --device "$dev" "${blocks[@]}" --master "$MASTER" --json
  done
done

# scikit-learn on the same machine and data, when it is installed (the peers' script).
PEERS=${PEERS:-../shared/peers}
if python3 -c 'import sklearn' 2>/dev/null && [ -f "$PEERS/sklearn_bench.py" ]; then
  python3 "$PEERS/sklearn_bench.py" --data "$DATA" --only kmeans,logreg --sizes "$SIZE" --reps "$REPS" \
    --out "${OUT%.jsonl}-sklearn.jsonl"
else
  echo "scikit-learn (or $PEERS/sklearn_bench.py) is not available here: no scikit-learn figures in this run"
fi

# Summary: the GEMV-like kernels' bandwidth (and fraction of peak), then end-to-end medians.
PEAK_GBPS="$PEAK_GBPS" python3 - "$OUT" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
peak = float(__import__("os").environ.get("PEAK_GBPS") or 0)
for r in rows:
    res = r["result"]
    if "kernel" in res:
        frac = f"  {100 * res['gb_per_s'] / peak:5.1f}% of {peak:.0f} GB/s" if peak and "Cpu" not in res["device"] and res["device"] != "cpu" else ""
        print(f"{r['bench']:<28} {res['kernel']:<9} {res['seconds_per_call']*1e3:9.3f} ms {res['gb_per_s']:9.1f} GB/s{frac}  [{res['device']}]")
by = {}
for r in rows:
    if "train_seconds" in r["result"]:
        by.setdefault(r["bench"], []).append(r["result"])
for name, rs in by.items():
    t = statistics.median(x["train_seconds"] for x in rs)
    extra = rs[-1].get("cost", rs[-1].get("loss"))
    print(f"{name:<36} train {t:8.3f} s (median of {len(rs)})  cost/loss {extra}  [{rs[-1].get('adapter')}]")
PY
