#!/usr/bin/env bash
# The GPU checks of fusionlab, in under 8 minutes on one GPU:
#   0. data: render the synthetic scenes every check uses (256 train + 16 val at 256 px), once
#   1. throughput: the training / Depth Anything / data-share tables (benchmarks/throughput.py)
#   2. sweep: benchmarks/gpu_sweep.yaml, 3 short cells, 2 workers sharing the GPU
#   3. torchrun: benchmarks/gpu_train.yaml (a short RGB-D run and its evaluation) on two processes (NCCL, DDP,
#      SyncBatchNorm, the sharded depth fill and the evaluation's gathers) where two GPUs are visible; on
#      one process, and a line saying the two-process path did not run, where one is
#   4. depth: `fusionlab depth` with a random-weight Depth Anything V2-Small on those 272 images
#   5. compile: throughput of L0 RGB-only with train.compile and train.channels_last
#
#   bash benchmarks/gpu_check.sh          # from the repository root
#
# Tables and logs go to $OUT when set, else ./gpu_check_out; summary.txt lists each check's exit
# status and seconds. Each check has a time limit and a failed one does not stop the others.
# Data and depth caches go to $FUSIONLAB_CACHE (default /tmp/fusionlab_gpu_check_cache), not
# under $OUT. Nothing is downloaded (HF_HUB_OFFLINE=1).
set -uo pipefail

cd "$(dirname "$0")/.."
OUT_DIR="${OUT:-gpu_check_out}"
mkdir -p "$OUT_DIR"
OUT_DIR="$(cd "$OUT_DIR" && pwd)"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export FUSIONLAB_CACHE="${FUSIONLAB_CACHE:-/tmp/fusionlab_gpu_check_cache}"
SUMMARY="$OUT_DIR/summary.txt"
: > "$SUMMARY"

# run_check NAME SECONDS COMMAND...: the command's output to NAME.log, a line to summary.txt; the
# limit shrinks to what is left of the 8 minutes, and a check with under 15 s left is skipped
DEADLINE=$(( $(date +%s) + 470 ))
run_check() {
    local name="$1" limit="$2" start rc
    shift 2
    start=$(date +%s)
    (( limit > DEADLINE - start )) && limit=$(( DEADLINE - start ))
    if (( limit < 15 )); then
        printf '%-12s skipped: out of time\n' "$name" | tee -a "$SUMMARY"
        return
    fi
    echo "== $name (limit ${limit} s): $*"
    timeout --kill-after=5 "$limit" "$@" > "$OUT_DIR/$name.log" 2>&1
    rc=$?
    printf '%-12s rc=%-3s %4s s  %s\n' "$name" "$rc" "$(( $(date +%s) - start ))" "$*" | tee -a "$SUMMARY"
    tail -n 40 "$OUT_DIR/$name.log"
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT_DIR/gpu.txt" 2>&1
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())" \
    >> "$OUT_DIR/gpu.txt" 2>&1
cat "$OUT_DIR/gpu.txt"

# both splits at once (rendering is single-threaded); the sets of gpu_sweep.yaml and gpu_train.yaml
run_check data 60 python - <<'PY'
from multiprocessing import get_context

from fusionlab.data import build_dataset


def render(split_and_count):
    split, count = split_and_count
    return len(build_dataset("synthetic", split=split, num_images=count, image_size=256))


print(get_context("fork").Pool(2).map(render, [("train", 256), ("val", 16)]))
PY

# L0 and L2 x RGB-only / add+same / add+quarter, batch searched from 8 to 128; data share on the scenes above
run_check throughput 170 python benchmarks/throughput.py --max-batch 128 --steps 3 --data-size 256

run_check sweep 80 fusionlab sweep benchmarks/gpu_sweep.yaml --workers 2 --workers-per-device 2 \
    --set "results_dir=$OUT_DIR/sweep"

GPUS=$(python -c "import torch; print(torch.cuda.device_count())" 2>/dev/null || echo 0)
if (( GPUS >= 2 )); then
    run_check torchrun_2gpu 90 torchrun --standalone --nproc_per_node 2 -m fusionlab train \
        benchmarks/gpu_train.yaml --out "$OUT_DIR/torchrun_run"
else
    printf '%-12s not run: %s GPU visible; the two-process path (NCCL, DDP, SyncBatchNorm) needs 2\n' \
        torchrun_2gpu "$GPUS" | tee -a "$SUMMARY"
    run_check torchrun 60 torchrun --standalone --nproc_per_node 1 -m fusionlab train benchmarks/gpu_train.yaml \
        --out "$OUT_DIR/torchrun_run"
fi

DEPTH_MODEL="$FUSIONLAB_CACHE/depth_anything_v2_small_random"
cat > "$OUT_DIR/depth.yaml" <<EOF
model: {fusion: add}
data:
  dataset: synthetic
  train: {split: train, num_images: 256, image_size: 256}
  val: {split: val, num_images: 16, image_size: 256}
depth:
  source: depth_anything
  options: {model: $DEPTH_MODEL, device: cuda, batch_size: 16}
EOF
run_check depth_model 20 python - "$DEPTH_MODEL" <<'PY'
import sys
from pathlib import Path

from transformers import DPTImageProcessor

sys.path.insert(0, "benchmarks")
from throughput import depth_anything_v2_small  # noqa: E402

folder = Path(sys.argv[1])
depth_anything_v2_small().save_pretrained(folder)
DPTImageProcessor(size={"height": 518, "width": 518}, keep_aspect_ratio=True, ensure_multiple_of=14, resample=3,
                  do_pad=False).save_pretrained(folder)
PY
run_check depth 45 fusionlab depth "$OUT_DIR/depth.yaml" --quiet

run_check compile 90 python benchmarks/throughput.py --presets efficientvit-sam-l0 --variants rgb --batch 16 \
    --compile --channels-last --skip depth data

echo "== summary ($SUMMARY)"
cat "$SUMMARY"
