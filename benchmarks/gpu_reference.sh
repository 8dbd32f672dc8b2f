#!/usr/bin/env bash
# Issue 13 on a lent GPU machine, in one bounded call that can be repeated to go on:
#   1. graph_check: cuda_graph trains exactly like eager (4 models); decides STEP_MODE;
#   2. the report's protocols of 03_resnet and 05_custom_resnet (params/reference-gpu.yaml) through
#      make run's runner, side by side, until the time budget calls a halt; a stopped run is then
#      finished as a partial one (STOP_AFTER = its last saved epoch) so that its notebook has outputs;
#   3. the speed benchmark (plain loop vs engine, 4 models, one process) with the time that is left;
#   4. the Custom ResNet screen (docs/custom-resnet.md, issue 22 item 3) with the time still left: every
#      candidate in $SCREEN side by side, 40 epochs each, --device cuda, in the STEP_MODE of step 1; a run
#      the budget cuts short is saved as <candidate>-e40-cuda-partial.json (snapshot).
# Steps 1 and 3 run once per machine (marker files); steps 2 and 4 resume from their checkpoints.
# STEPS (default "1 2 3 4") picks steps: STEPS="1 4" screens only (after the graph check that sets its mode);
# SCREEN_SECONDS (default 0) keeps that many seconds of step 2's share for step 4.
#
# Here, once:  ../shared/gpu-wheels/fetch.sh .gpu && cp ../shared/cifar10/cifar10_jpeg.tar.gz .gpu/
# Device tool: run(command="GIT_COMMIT=<git rev-parse HEAD> GPU_BUDGET=520 bash benchmarks/gpu_reference.sh",
#   carry=[".gpu"], timeout_s=570) (the copy there has no .git: the results record $GIT_COMMIT),
# then at once (a machine stays warm 30 s) the same with GPU_BUDGET=<what is left less 40> to go on: the
# second call skips steps 1 and 3 and resumes the runs. Seen on an H200 (2026-11-28): start ~35 s; wheels,
# data and decoding 16-28 s; graph check ~30 s.
# $OUT gets: gpu.log, reference.tar.gz (results, executed notebooks, logs, consoles), checkpoints.tar.gz.part-*
# (to carry back for a later session: cat them | tar -xz), epoch_speed.json, RESULTS-gpu.md, and
# custom-resnet.tar.gz (step 4: reference/custom-resnet/ with each candidate's console log; extract it in the
# repository, then `python benchmarks/lecture_models.py --study custom-resnet table --write`). The screen's
# checkpoints (over 200 MB for K1 alone) stay on the machine: a second call while it is warm goes on from them.
# The device tool brings back at most 8 files from $OUT: these are 5, with 2-3 checkpoint parts.
# To go on from an earlier session's runs, extract its checkpoints here and add checkpoints/reference-gpu
# to carry; they resume only under the same STEP_MODE, which is part of a run's fingerprint.
set -uo pipefail

OUT=${OUT:-$PWD/gpu-reference-out}
mkdir -p "$OUT"
BUDGET=${GPU_BUDGET:-480}       # seconds for the whole script
SPEED_SECONDS=${SPEED_SECONDS:-90}  # kept for step 3 (skipped once done on this machine)
SCREEN_SECONDS=${SCREEN_SECONDS:-0}  # kept for step 4
SCREEN=${SCREEN:-K0 K1 K2 K3 K4 K5 K6 K7}
STEPS=" ${STEPS:-1 2 3 4} "
START=$(date +%s)
PY=${PYTHON:-python3}
MARKS=checkpoints/gpu-session   # ignored, so it stays on a warm machine between calls
mkdir -p "$MARKS"
export PYTHONUNBUFFERED=1 CIFAR_PROGRESS=lines
exec > >(tee -a "$OUT/gpu.log") 2>&1

left() { echo $((BUDGET - ($(date +%s) - START))); }
want() { [[ "$STEPS" == *" $1 "* ]]; }
say() { echo "=== $* ($(($(date +%s) - START)) s elapsed)"; }

say "gpu_reference $(date -u +%FT%TZ) commit ${GIT_COMMIT:-unknown}"
export PYTHONPATH="/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
if ! "$PY" -c "import papermill, ipykernel" 2>/dev/null; then  # installed by an earlier call on this machine?
    "$PY" -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpu/*.whl || exit 2
fi
# The data and where the runs go: params/reference-gpu.yaml's DATA_DIR, RESULTS_DIR and executed_dir.
read -r DATA RESULTS EXECUTED < <("$PY" -c "import yaml; p = yaml.safe_load(open('params/reference-gpu.yaml')); print(p['DATA_DIR'], p['RESULTS_DIR'], p['workbook']['executed_dir'])")
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$PY" -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(), 'cudnn.allow_tf32', torch.backends.cudnn.allow_tf32)"
if [ ! -d "$DATA/train" ]; then
    mkdir -p "$DATA" && tar -xzf .gpu/cifar10_jpeg.tar.gz -C "$DATA" || exit 2
fi
"$PY" -c "import warnings; warnings.simplefilter('ignore'); from cifar_helpers.data.cifar10 import load_cifar10; print(load_cifar10('$DATA', download=False))" || exit 2
say "data ready"

# 1. graph equivalence, once per machine.
if want 1 && [ ! -f "$MARKS/graph_check.passed" ] && [ ! -f "$MARKS/graph_check.failed" ]; then
    say "1 graph_check"
    if timeout --signal=INT --kill-after=10 100 "$PY" benchmarks/graph_check.py --data-dir "$DATA"; then
        touch "$MARKS/graph_check.passed"
    else
        touch "$MARKS/graph_check.failed"
    fi
fi
MODE=eager
[ -f "$MARKS/graph_check.passed" ] && MODE=cuda_graph
say "1 graph_check: $(ls "$MARKS" | grep graph_check); STEP_MODE=$MODE"

# 2. the two protocols side by side, bounded by the budget.
profile() {  # profile NOTEBOOK [STOP_AFTER] -> a parameter file for make run's runner
    "$PY" - "$MODE" "$@" <<'EOF'
import sys, yaml
mode, notebook, stop = sys.argv[1], sys.argv[2], (sys.argv[3:] or [""])[0] or None
p = yaml.safe_load(open("params/reference-gpu.yaml"))
p["STEP_MODE"] = mode
if stop is not None:
    p.setdefault("notebooks", {})[notebook] = {"STOP_AFTER": int(stop)}
path = f"/tmp/reference-gpu-{notebook}.yaml"
yaml.safe_dump(p, open(path, "w"))
print(path)
EOF
}
run_notebook() {  # run_notebook NOTEBOOK SECONDS [STOP_AFTER]
    local nb=$1 seconds=$2
    mkdir -p "$EXECUTED-$nb"
    timeout --signal=INT --kill-after=30 "$seconds" "$PY" -m cifar_helpers.workbook.run_all --yes --only "$nb" \
        --params "$(profile "$nb" "${3:-}")" --executed-dir "$EXECUTED-$nb" \
        >>"$EXECUTED-$nb/console.log" 2>&1
    echo "$nb: exit $?"
}
saved_epochs() {  # the epochs in a model's last checkpoint's results file
    "$PY" -c "import json,sys; r=json.load(open('$RESULTS/$1.json')); print(len(r['history']), r.get('complete'))" 2>/dev/null || echo "0 False"
}
reserve=$((40 + 15))
want 3 && [ ! -f "$MARKS/speed.done" ] && reserve=$((reserve + SPEED_SECONDS))
want 4 && reserve=$((reserve + SCREEN_SECONDS))
train_seconds=$(($(left) - reserve))
if ! want 2; then
    say "2 not in STEPS"
elif ((train_seconds > 30)); then
    say "2 training 03_resnet and 05_custom_resnet for at most ${train_seconds} s"
    run_notebook 03_resnet "$train_seconds" & p1=$!
    run_notebook 05_custom_resnet "$train_seconds" & p2=$!
    wait $p1 $p2  # (a bare wait would also wait for the tee of the log)
    pids=()
    for pair in 03_resnet:resnet 05_custom_resnet:custom_resnet; do
        nb=${pair%%:*} model=${pair##*:}
        read -r epochs complete < <(saved_epochs "$model")
        say "2 $model: $epochs epochs saved, complete=$complete"
        tail -n 3 "$EXECUTED-$nb/console.log"
        if [ "$complete" != "True" ] && ((epochs > 0)); then
            say "2 $nb: finishing as a partial run with STOP_AFTER=$epochs"
            run_notebook "$nb" 60 "$epochs" & pids+=($!)
        fi
    done
    for p in "${pids[@]}"; do wait "$p"; done
    for model in resnet custom_resnet; do say "2 $model: $(saved_epochs $model)"; done
else
    say "2 SKIPPED: ${train_seconds} s for training"
fi

# 3. speed: plain loop vs engine, once per machine.
if want 3 && [ ! -f "$MARKS/speed.done" ] && (($(left) > 45)); then
    say "3 epoch_speed (limit $(($(left) - 15)) s)"
    timeout --signal=INT --kill-after=5 $(($(left) - 15)) "$PY" benchmarks/epoch_speed.py --device cuda \
        --models custom_resnet,dnn,cnn,resnet --modes "$MODE" --epochs 1 --suite --data-dir "$DATA" \
        --json "$OUT/epoch_speed.json" --markdown "$OUT/RESULTS-gpu.md" && touch "$MARKS/speed.done"
fi

# 4. the Custom ResNet screen, side by side (a batch-64 step leaves the GPU mostly idle), until 40 s remain.
study() { "$PY" benchmarks/lecture_models.py --study custom-resnet "$@"; }
SCREEN_DIR=reference/custom-resnet
screen_seconds=$(($(left) - 40))
if want 4 && ((screen_seconds > 60)); then
    say "4 custom-resnet screen: $SCREEN, 40 epochs each, STEP_MODE=$MODE, at most ${screen_seconds} s"
    mkdir -p "$SCREEN_DIR/.runs"
    pids=()
    for name in $SCREEN; do
        timeout --signal=INT --kill-after=20 "$screen_seconds" "$PY" benchmarks/lecture_models.py \
            --study custom-resnet train "$name" --device cuda --step-mode "$MODE" --threads 2 --data-dir "$DATA" \
            >>"$SCREEN_DIR/.runs/$name.console.log" 2>&1 & pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p"; done
    for name in $SCREEN; do say "4 $name: $(tail -n 1 "$SCREEN_DIR/.runs/$name.console.log")"; done
    study snapshot  # the runs the budget cut short, as <candidate>-e40-cuda-partial.json
    study table
elif want 4; then
    say "4 SKIPPED: ${screen_seconds} s for the screen"
fi

say "packing"
tar -czf "$OUT/reference.tar.gz" "$RESULTS" "$EXECUTED"-* "$MARKS" 2>/dev/null
want 4 && [ -d "$SCREEN_DIR" ] && tar -czf "$OUT/custom-resnet.tar.gz" "$SCREEN_DIR"
[ -d checkpoints/reference-gpu ] && tar -cz checkpoints/reference-gpu | split -b 15M - "$OUT/checkpoints.tar.gz.part-"
say "done"
ls -la "$OUT"
