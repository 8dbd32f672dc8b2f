#!/usr/bin/env bash
# Every GPU measurement issue 6 is missing, in one run on one H100 (about 6-8 minutes).
#
# Here, once:   mkdir -p .data && cp ../shared/cifar10/cifar10_jpeg.tar.gz .data/
# Device tool:  run(command="GIT_COMMIT=<git rev-parse HEAD> bash benchmarks/gpu_check.sh",
#                   carry=[".data"], timeout_s=570)
# Anywhere else with a GPU:  OUT=gpu-check-out bash benchmarks/gpu_check.sh
#
# Needs python3 with torch, torchvision, numpy, pillow, pyyaml (the device image has them; no
# Jupyter needed). Steps, most important first; each has a time limit, and the optional ones at
# the end are skipped when the budget (GPU_CHECK_BUDGET seconds, default 480) runs short:
#   1. launches per step (op_counts --launches): eager vs cuda_graph, batch 64
#   2. graph_check: cuda_graph trains exactly like eager (4 models), dropout + bf16 in a graph
#   3. epoch_speed: plain loop vs engine (cuda_graph), 4 models, + report-suite estimate
#   4. epoch_speed: Custom ResNet engine eager (before) and cuda_graph+bf16
#   5. fast_profile: params/fast.yaml, time and accuracy against the target
#   6. graph_check --train-epochs 5: DNN and CNN accuracy, eager vs cuda_graph
#   7. (optional) fast profile again with the epochs that fit 55 s (half the lr if it diverged),
#      if the first run missed or had room
#   8. (optional) Custom ResNet with compile_cuda_graph (compile time + s/epoch)
# Results in $OUT: gpu_check.log (everything), RESULTS-gpu.md (tables to append to
# benchmarks/RESULTS.md), epoch_speed.json, epoch_speed_modes.json, fast_profile.json,
# fast_profile_variant.json, compile.json.
set -uo pipefail

OUT=${OUT:-$PWD/gpu-check-out}
mkdir -p "$OUT"
BUDGET=${GPU_CHECK_BUDGET:-480}
START=$(date +%s)
PY=${PYTHON:-python3}
DATA=${CIFAR10_JPEG_DIR:-/tmp/cifar10-jpeg}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 CIFAR_PROGRESS=lines
exec > >(tee -a "$OUT/gpu_check.log") 2>&1

left() { echo $((BUDGET - ($(date +%s) - START))); }

# run_step NAME LIMIT_SECONDS MIN_SECONDS COMMAND...: skipped when less than MIN_SECONDS remain.
run_step() {
    local name=$1 limit=$2 min=$3 remaining
    shift 3
    remaining=$(left)
    if ((remaining < min)); then
        echo "=== SKIPPED $name: ${remaining}s of the budget left, needs ${min}s"
        return 0
    fi
    ((limit > remaining)) && limit=$remaining
    echo "=== $name (limit ${limit}s; $(($(date +%s) - START))s elapsed)"
    local began
    began=$(date +%s)
    timeout --signal=INT --kill-after=10 "$limit" "$@"
    local status=$?
    echo "=== $name: exit $status after $(($(date +%s) - began))s"
    return 0
}

echo "=== gpu_check $(date -u +%FT%TZ) commit ${GIT_COMMIT:-unknown}"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader || true
"$PY" -c "import torch, torchvision, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'torchvision', torchvision.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())"

if [ ! -d "$DATA/train" ]; then
    archive=.data/cifar10_jpeg.tar.gz
    [ -f "$archive" ] || { echo "no $archive: copy ../shared/cifar10/cifar10_jpeg.tar.gz into .data/ and carry .data"; exit 2; }
    mkdir -p "$DATA" && tar -xzf "$archive" -C "$DATA"
fi
# Decode once (the loader caches the arrays next to the images).
"$PY" -c "import warnings; warnings.simplefilter('ignore'); from cifar_helpers.data.cifar10 import load_cifar10; print(load_cifar10('$DATA', download=False))"
export CIFAR10_DIR=$DATA

run_step "1 launches per step" 60 20 \
    "$PY" benchmarks/op_counts.py --launches --modes eager,cuda_graph,cuda_graph+bf16

run_step "2 graph equivalence" 120 30 \
    "$PY" benchmarks/graph_check.py --data-dir "$DATA"

run_step "3 epoch speed: plain vs engine, 4 models" 200 60 \
    "$PY" benchmarks/epoch_speed.py --device cuda --modes cuda_graph --epochs 2 --suite \
    --data-dir "$DATA" --json "$OUT/epoch_speed.json" --markdown "$OUT/RESULTS-gpu.md"

run_step "4 epoch speed: Custom ResNet engine modes" 100 40 \
    "$PY" benchmarks/epoch_speed.py --device cuda --models custom_resnet --no-plain \
    --modes eager,cuda_graph+bf16 --epochs 1 --data-dir "$DATA" \
    --json "$OUT/epoch_speed_modes.json" --markdown "$OUT/RESULTS-gpu.md" --title "Custom ResNet, engine modes"

run_step "5 fast profile" 110 70 \
    "$PY" benchmarks/fast_profile.py --params params/fast.yaml --data-dir "$DATA" --device cuda \
    --set RESULTS_DIR=/tmp/fast/results --set CHECKPOINT_DIR=/tmp/fast/checkpoints --json "$OUT/fast_profile.json"

run_step "6 accuracy: eager vs cuda_graph, 5 epochs" 90 45 \
    "$PY" benchmarks/graph_check.py --data-dir "$DATA" --no-equivalence --train-epochs 5 --train-models dnn,cnn

# 7. The epochs that fit 55 s at the measured speed (and half the peak lr if the first run diverged);
#    rerun if the first run missed or had room for 10 more epochs.
read -r variant_epochs variant_lr < <("$PY" - "$OUT/fast_profile.json" <<'EOF' 2>/dev/null
import json, math, sys
s = json.load(open(sys.argv[1]))
epochs = s["epochs"]
per_epoch = (s["wall_seconds_from_start_of_training"] - s["first_epoch_train_seconds"]) / max(1, epochs - 1)
fit = min(200, max(1, math.floor((55 - s["first_epoch_train_seconds"]) / per_epoch) + 1))
diverged = not s["best_test_acc"] >= 0.5
if s["verdict"] != "PASS" or fit >= epochs + 10:
    print(fit, s["params"]["lr"] / 2 if diverged else "")
EOF
)
if [ -n "${variant_epochs:-}" ]; then
    run_step "7 fast profile with EPOCHS=$variant_epochs ${variant_lr:+LR=$variant_lr}" 100 70 \
        "$PY" benchmarks/fast_profile.py --params params/fast.yaml --data-dir "$DATA" --device cuda \
        --set EPOCHS="$variant_epochs" ${variant_lr:+--set LR="$variant_lr"} \
        --set RESULTS_DIR=/tmp/fast/results --set CHECKPOINT_DIR=/tmp/fast/checkpoints \
        --json "$OUT/fast_profile_variant.json"
else
    echo "=== 7 skipped: the fast profile passed with no room for 10 more epochs (or did not run)"
fi

run_step "8 compile_cuda_graph, Custom ResNet" 200 120 \
    "$PY" benchmarks/epoch_speed.py --device cuda --models custom_resnet --no-plain --modes compile_cuda_graph \
    --epochs 1 --data-dir "$DATA" --json "$OUT/compile.json" --markdown "$OUT/RESULTS-gpu.md" \
    --title "Custom ResNet, compile_cuda_graph"

# The fast-profile results as a RESULTS.md section too.
"$PY" - "$OUT" <<'EOF' || true
import json, pathlib, sys
out = pathlib.Path(sys.argv[1])
lines = []
for name in ("fast_profile.json", "fast_profile_variant.json"):
    path = out / name
    if path.exists():
        s = json.loads(path.read_text())
        p = s["params"]
        lines.append(f"| {name} | {p['epochs']} | {p['batch_size']} | {p['optimizer']} lr {p['lr']} | "
                     f"{100 * s['best_test_acc']:.2f}% (epoch {s['best_acc_epoch']}) | "
                     f"{s['wall_seconds_from_start_of_training']:.1f} | {s['first_epoch_train_seconds']:.2f} | "
                     f"{s['later_epoch_train_seconds'] or 0:.2f} | {s['verdict']} |")
if lines:
    table = ["## Fast profile (params/fast.yaml), " + s["device"] + ", torch " + s["torch"], "",
             "| run | epochs | batch | optimizer | best test acc | wall s from start of training | "
             "first epoch s | later epochs s (median) | >= 90.5% in < 60 s |",
             "|---|---:|---:|---|---:|---:|---:|---:|---|", *lines, ""]
    with open(out / "RESULTS-gpu.md", "a") as f:
        f.write("\n" + "\n".join(table) + "\n")
EOF
echo "=== gpu_check done in $(($(date +%s) - START))s; results in $OUT"
ls -la "$OUT"
