#!/usr/bin/env bash
# `make docker-test`: build the workbook's image and run the README's Docker
# commands in it, on a machine without a Docker daemon or registry access.
#
# buildah builds the Dockerfile (`buildah bud`) and runs the containers
# (`buildah run --isolation chroot`, the host's network). The official PyTorch
# image can't be pulled here, so a local stand-in for it is built first and kept
# for later runs (REBUILD_BASE=1 rebuilds it):
#   Debian bookworm (debootstrap) + python3, with torch and torchvision (the CUDA
#   wheels, as in the official image) pip-installed the way the official image has
#   them, chosen by BASE_LAYOUT:
#     system (default)  like pytorch/pytorch >= 2.10, the Dockerfile's default:
#                       the distribution's python3, torch in its dist-packages,
#                       pip's PEP 668 guard on, a user `ubuntu` with uid 1000.
#     conda             like pytorch/pytorch <= 2.9: python and torch in
#                       /opt/conda/bin, root only.
# Then, with the README's commands and volume layout (the host folders are a
# temporary copy owned by the image's uid, as a user's checkout would be):
#   1. build the image on the stand-in (`docker build`),
#   2. check the user isn't root and torch is the base's, not reinstalled,
#   3. run the CPU smoke profile and check results, figures and executed notebooks,
#   4. start JupyterLab, check its token URL, then docker/lab_check.py (its page, its
#      settings, a kernel that runs a cell, a committed notebook opened and saved
#      unchanged), that a notebook saved through it lands in the mounted notebooks/
#      folder, and that no kernel ran without encryption.
# Needs root, buildah and debootstrap (installed with apt-get when missing), about
# 12 GB of disk for the stand-in, and the network to PyPI and the Debian mirror.
# Knobs: BASE_LAYOUT, REBUILD_BASE=1, KEEP_WORK=1, BUILD_ONLY=1, TORCH_VERSION,
# TORCHVISION_VERSION, DEBIAN_MIRROR, LAB_PORT, IMAGE; OMP_NUM_THREADS, when set, is passed
# on to the smoke run and JupyterLab's kernels (on a shared machine).
set -euo pipefail

cd "$(dirname "$0")/.."
REPO=$PWD

BASE_LAYOUT=${BASE_LAYOUT:-system}
TORCH_VERSION=${TORCH_VERSION:-2.14.1}
TORCHVISION_VERSION=${TORCHVISION_VERSION:-0.29.1}
IMAGE=${IMAGE:-cifar-workbook}
BASE_IMAGE=localhost/cifar-workbook-base:${BASE_LAYOUT}-torch${TORCH_VERSION}
LAB_PORT=${LAB_PORT:-8888}
SMOKE_PARAMS=params/smoke.yaml
# The folders the README mounts into /workbook (notebooks/ only for JupyterLab).
RUN_VOLUMES=(data results figures executed checkpoints)
RUN_ENV=()
[ -n "${OMP_NUM_THREADS:-}" ] && RUN_ENV=(--env "OMP_NUM_THREADS=$OMP_NUM_THREADS")

started=$(date +%s)
step() { printf '\n== docker-test [%ss] %s\n' "$(($(date +%s) - started))" "$*"; }
fail() {
    printf '\ndocker-test: FAIL after %ss: %s\n' "$(($(date +%s) - started))" "$*" >&2
    exit 1
}

case $BASE_LAYOUT in
    system | conda) ;;
    *) fail "BASE_LAYOUT must be 'system' or 'conda', not '$BASE_LAYOUT'" ;;
esac
[ "$(id -u)" = 0 ] || fail "run as root (sudo make docker-test): buildah's chroot isolation and debootstrap need it"
for needed in Dockerfile .dockerignore pyproject.toml; do
    [ -e "$needed" ] || fail "$needed is missing from $REPO"
done

if ! command -v buildah >/dev/null || ! command -v debootstrap >/dev/null; then
    command -v apt-get >/dev/null || fail "install buildah and debootstrap (Debian/Ubuntu: apt-get install buildah debootstrap)"
    step "installing buildah and debootstrap with apt-get"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends buildah debootstrap >/dev/null
fi

WORK=$(mktemp -d /tmp/cifar-workbook-docker-test.XXXXXX)
containers=()
lab_pid=
cleanup() {
    if [ -n "$lab_pid" ]; then
        kill -TERM -- "-$lab_pid" 2>/dev/null || true
        wait "$lab_pid" 2>/dev/null || true
    fi
    for ctr in "${containers[@]}"; do buildah rm "$ctr" >/dev/null 2>&1 || true; done
    if [ "${KEEP_WORK:-0}" = 1 ]; then
        echo "docker-test: kept $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

new_container() { # IMAGE NAME: a working container NAME, removed on exit
    buildah from --pull=never --name "$2" "$1" >/dev/null
    containers+=("$2")
}

# pip's own local sources (find-links, file:// indexes), mounted read-only into
# the stand-in's build so that torch's wheels come from disk where pip has them.
local_pip_sources() {
    local value path
    python3 -m pip config list 2>/dev/null |
        sed -nE "s/^[^=]*\.(find-links|extra-index-url|index-url)='(.*)'$/\2/p" |
        tr ' ' '\n' | sort -u |
        while read -r value; do
            case $value in
                file://*) path=${value#file://} ;;
                /*) path=$value ;;
                *) continue ;;
            esac
            [ -d "$path" ] || continue
            # A simple index links to ../../files: mount the folder above it.
            [ "$(basename "$path")" = simple ] && path=$(dirname "$path")
            echo "$value $path"
        done
}

# A TLS-inspecting proxy's CA (pip's `cert` setting) must be trusted inside the
# builds too: the host's bundle stands in for the container's during build steps
# (bind-mounted, so it is never committed into an image).
tls_volumes() {
    local bundle=${PIP_CERT:-}
    [ -n "$bundle" ] || bundle=$(python3 -m pip config get global.cert 2>/dev/null || true)
    if [ -n "$bundle" ] && [ -f "$bundle" ]; then
        echo "--volume"
        echo "$bundle:/etc/ssl/certs/ca-certificates.crt:ro"
    fi
}
mapfile -t TLS_VOLUMES < <(tls_volumes)

debian_mirror() {
    if [ -n "${DEBIAN_MIRROR:-}" ]; then echo "$DEBIAN_MIRROR"; return; fi
    local found
    found=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
        grep -oE 'https?://[^ ]+/debian/?( |$)' | grep -v security | head -n1 | tr -d ' ' || true)
    echo "${found:-http://deb.debian.org/debian}"
}

build_base() {
    local rootfs=$WORK/rootfs mirror packages ctr
    mirror=$(debian_mirror)
    packages=ca-certificates,python3,python3-pip,python-is-python3
    [ "$BASE_LAYOUT" = conda ] && packages=$packages,python3-venv
    step "stand-in base $BASE_IMAGE: debootstrap bookworm from $mirror"
    debootstrap --variant=minbase --include="$packages" bookworm "$rootfs" "$mirror" >"$WORK/debootstrap.log" 2>&1 ||
        { tail -n 20 "$WORK/debootstrap.log" >&2; fail "debootstrap failed (log above)"; }
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb
    tar -C "$rootfs" --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' -cf "$WORK/rootfs.tar" .
    rm -rf "$rootfs"

    ctr=$(buildah from scratch)
    containers+=("$ctr")
    buildah add "$ctr" "$WORK/rootfs.tar" / >/dev/null
    rm -f "$WORK/rootfs.tar"

    local pip_args=() volumes=("${TLS_VOLUMES[@]}") value path python=python3
    while read -r value path; do
        volumes+=(--volume "$path:$path:ro")
        case $value in
            file://*) pip_args+=(--extra-index-url "$value") ;;
            *) pip_args+=(--find-links "$value") ;;
        esac
    done < <(local_pip_sources)
    if [ "$BASE_LAYOUT" = conda ]; then
        buildah run --isolation chroot "$ctr" -- python3 -m venv /opt/conda || fail "python3 -m venv /opt/conda failed"
        python=/opt/conda/bin/python
    else
        pip_args+=(--break-system-packages)
        buildah run --isolation chroot "$ctr" -- useradd --create-home --user-group --uid 1000 ubuntu ||
            fail "useradd ubuntu failed"
    fi
    step "stand-in base: pip install torch==$TORCH_VERSION torchvision==$TORCHVISION_VERSION ($((${#volumes[@]} / 2)) host paths mounted)"
    if ! buildah run --isolation chroot "${volumes[@]}" "$ctr" -- \
        "$python" -m pip install --no-cache-dir "${pip_args[@]}" \
        "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION" >"$WORK/base-pip.log" 2>&1; then
        grep -v 'is ignored: it is neither' "$WORK/base-pip.log" | tail -n 20 >&2
        fail "pip could not install torch into the stand-in base (log above)"
    fi
    grep -E '^Successfully installed' "$WORK/base-pip.log" | cut -c1-200 || true

    local path_env=/usr/local/nvidia/bin:/usr/local/cuda/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
    [ "$BASE_LAYOUT" = conda ] && path_env=/opt/conda/bin:$path_env
    buildah config --env "PATH=$path_env" --env NVIDIA_VISIBLE_DEVICES=all \
        --env NVIDIA_DRIVER_CAPABILITIES=compute,utility \
        --env LD_LIBRARY_PATH=/usr/local/nvidia/lib:/usr/local/nvidia/lib64 \
        --env "PYTORCH_VERSION=$TORCH_VERSION" --workingdir /workspace \
        --cmd /bin/bash "$ctr"
    step "stand-in base: commit"
    buildah commit --quiet --rm "$ctr" "$BASE_IMAGE" >/dev/null
    containers=("${containers[@]/$ctr/}")
}

# 0. The stand-in base, cached.
if [ "${REBUILD_BASE:-0}" = 1 ] && buildah inspect --type image "$BASE_IMAGE" >/dev/null 2>&1; then
    buildah rmi "$BASE_IMAGE" >/dev/null
fi
if buildah inspect --type image "$BASE_IMAGE" >/dev/null 2>&1; then
    step "stand-in base $BASE_IMAGE: cached (REBUILD_BASE=1 rebuilds it)"
else
    build_base
fi
new_container "$BASE_IMAGE" "cifar-workbook-base-$$"
# Versions, and torch's install time: a reinstall of the same version changes it.
TORCH_PROBE='import os, torch, torchvision; print(torch.__version__, torchvision.__version__, os.stat(torch.__file__).st_mtime_ns)'
base_torch=$(buildah run --isolation chroot "cifar-workbook-base-$$" -- python3 -c "$TORCH_PROBE")
echo "stand-in base: torch, torchvision, torch's mtime: $base_torch"

# 1. README: docker build -t cifar-workbook .
step "building the Dockerfile on the stand-in: buildah bud -t $IMAGE ."
previous_image=$(buildah inspect --type image --format '{{.FromImageID}}' "$IMAGE" 2>/dev/null || true)
if ! buildah bud --isolation chroot --layers --pull=never "${TLS_VOLUMES[@]}" --build-arg "BASE_IMAGE=$BASE_IMAGE" \
    --tag "$IMAGE" --file Dockerfile . 2>&1 | tee "$WORK/build.log" | grep --line-buffered -E '^(STEP|COMMIT)|^torch(vision)?==|^cifar_helpers from'; then
    tail -n 30 "$WORK/build.log" >&2
    fail "the image build failed (log above)"
fi
# The replaced image would stay behind untagged, a few hundred MB a build: drop it (the
# layer cache that makes the next build quick stays).
if [ -n "$previous_image" ] && [ "$previous_image" != "$(buildah inspect --type image --format '{{.FromImageID}}' "$IMAGE")" ]; then
    buildah rmi "$previous_image" >/dev/null 2>&1 || true
fi

# 2. Non-root, and the base's torch kept.
probe=cifar-workbook-probe-$$
new_container "$IMAGE" "$probe"
# shellcheck disable=SC2016 # expanded by the container's shell, on purpose
read -r image_uid image_gid < <(buildah run --isolation chroot "$probe" -- sh -c 'echo "$(id -u) $(id -g)"')
[ "$image_uid" != 0 ] || fail "the image runs as root; the Dockerfile must end with a non-root USER"
image_torch=$(buildah run --isolation chroot "$probe" -- python3 -c "$TORCH_PROBE")
[ "$image_torch" = "$base_torch" ] || fail "pip replaced the base's torch: base has '$base_torch', the image '$image_torch'"
# shellcheck disable=SC2016 # as above
cublas=$(buildah run --isolation chroot "$probe" -- sh -c 'echo "$CUBLAS_WORKSPACE_CONFIG"')
[ "$cublas" = ":4096:8" ] || fail "CUBLAS_WORKSPACE_CONFIG is '$cublas' in the image, not ':4096:8'"
default_cmd=$(buildah inspect --type image --format '{{.OCIv1.Config.Cmd}}' "$IMAGE")
[[ $default_cmd == *cifar_helpers.workbook.run_all* ]] || fail "the image's default command is $default_cmd, not the notebook runner"
echo "image: uid $image_uid, torch, torchvision ${image_torch% *} (the base's files), CUBLAS_WORKSPACE_CONFIG=$cublas"

if [ "${BUILD_ONLY:-0}" = 1 ]; then
    printf '\ndocker-test: BUILD_ONLY=1, stopping after the image build (%ss)\n' "$(($(date +%s) - started))"
    exit 0
fi
for needed in "$SMOKE_PARAMS" cifar_helpers/workbook/run_all.py; do
    [ -e "$needed" ] || fail "$needed is missing from $REPO"
done

# The host folders: a copy of the checkout's, owned by the image's uid like a
# user's own checkout (README: mkdir -p data results figures executed checkpoints).
for dir in "${RUN_VOLUMES[@]}" notebooks; do
    mkdir -p "$WORK/host/$dir"
    if [ -d "$dir" ]; then
        tar -C "$dir" --exclude=./smoke -cf - . | tar -C "$WORK/host/$dir" -xf -
    fi
done
chown -R "$image_uid:$image_gid" "$WORK/host"
volumes=()
for dir in "${RUN_VOLUMES[@]}"; do volumes+=(--volume "$WORK/host/$dir:/workbook/$dir"); done

# 3. README: docker run --rm --gpus all -v ... cifar-workbook python3 -m cifar_helpers.workbook.run_all --params params/smoke.yaml
step "smoke run in the image: python3 -m cifar_helpers.workbook.run_all --params $SMOKE_PARAMS"
touch "$WORK/smoke.start"
smoke_started=$(date +%s)
smoke=cifar-workbook-smoke-$$
new_container "$IMAGE" "$smoke"
if ! buildah run --isolation chroot "${RUN_ENV[@]}" "${volumes[@]}" "$smoke" -- \
    python3 -m cifar_helpers.workbook.run_all --params "$SMOKE_PARAMS" >"$WORK/smoke.log" 2>&1; then
    tail -n 40 "$WORK/smoke.log" >&2
    fail "the smoke run failed in the image (log above)"
fi
smoke_seconds=$(($(date +%s) - smoke_started))
tail -n 5 "$WORK/smoke.log"

# What the smoke profile promises, read inside the image: its output folders
# and the models the runner trains.
read -r results_dir figures_dir models < <(buildah run --isolation chroot "$probe" -- python3 -c "
import yaml
from cifar_helpers.workbook.run_all import NOTEBOOKS
p = yaml.safe_load(open('$SMOKE_PARAMS'))
print(p['RESULTS_DIR'], p['FIGURES_DIR'], ','.join(m for _, m in NOTEBOOKS if m))")
new_files() { find "$WORK/host/$1" -type f -newer "$WORK/smoke.start" "${@:2}" | sort; }
mapfile -t results < <(new_files "$results_dir" -name '*.json')
mapfile -t figures < <(new_files "$figures_dir" \( -name '*.png' -o -name '*.pdf' -o -name '*.svg' \))
mapfile -t executed < <(new_files executed -name '*.ipynb')
mapfile -t notebooks < <(find notebooks -maxdepth 1 -name '[0-9][0-9]_*.ipynb' | sort)
[ -n "${models:-}" ] || fail "could not read RESULTS_DIR and FIGURES_DIR from $SMOKE_PARAMS in the image"
for model in ${models//,/ }; do
    result=$WORK/host/$results_dir/$model.json
    if ! { [ -s "$result" ] && [ "$result" -nt "$WORK/smoke.start" ]; }; then
        fail "the smoke run wrote no $results_dir/$model.json into the mounted results/"
    fi
done
[ "${#figures[@]}" -gt 0 ] || fail "the smoke run wrote no figure into the mounted $figures_dir/"
[ "${#executed[@]}" -eq "${#notebooks[@]}" ] ||
    fail "executed/ holds ${#executed[@]} executed notebooks, expected ${#notebooks[@]} (one per notebooks/NN_*.ipynb)"
foreign=$(find "$WORK/host" -newer "$WORK/smoke.start" ! -uid "$image_uid" | head -n 3)
[ -z "$foreign" ] || fail "files written through the volumes are not owned by uid $image_uid: $foreign"
printf 'results: %s\n' "${results[@]#"$WORK/host/"}"
printf 'figures: %s\n' "${figures[@]#"$WORK/host/"}"
printf 'executed: %s\n' "${executed[@]#"$WORK/host/"}"

# 4. README: docker run --rm -it --gpus all -p 8888:8888 -v "$PWD/notebooks:/workbook/notebooks" -v ...
#    cifar-workbook jupyter lab --ip 0.0.0.0 --port 8888 --no-browser --LabApp.default_url=/lab/tree/notebooks
# chroot isolation shares the host's network: the port needs no mapping, and must be free.
step "JupyterLab in the image on port $LAB_PORT"
if (echo >"/dev/tcp/127.0.0.1/$LAB_PORT") 2>/dev/null; then
    fail "port $LAB_PORT is in use on this machine; run with LAB_PORT=<a free port>"
fi
lab=cifar-workbook-lab-$$
new_container "$IMAGE" "$lab"
setsid buildah run --isolation chroot "${RUN_ENV[@]}" --volume "$WORK/host/notebooks:/workbook/notebooks" "${volumes[@]}" "$lab" -- \
    jupyter lab --ip 0.0.0.0 --port "$LAB_PORT" --no-browser --LabApp.default_url=/lab/tree/notebooks \
    >"$WORK/lab.log" 2>&1 &
lab_pid=$!
lab_url=
for _ in $(seq 120); do
    lab_url=$(grep -oE "http://127\.0\.0\.1:$LAB_PORT/lab/tree/notebooks\?token=[0-9a-f]+" "$WORK/lab.log" | head -n1 || true)
    [ -n "$lab_url" ] && break
    kill -0 "$lab_pid" 2>/dev/null || break
    sleep 1
done
[ -n "$lab_url" ] || { tail -n 30 "$WORK/lab.log" >&2; fail "JupyterLab printed no token URL within 120 s (log above)"; }
echo "JupyterLab printed $lab_url"
token=${lab_url##*token=}
api() { curl --silent --show-error --fail --max-time 60 -H "Authorization: token $token" "$@"; }
# The page, its settings, a kernel that runs a cell, and a committed notebook opened and saved as
# JupyterLab does it (the image's Python is not the one the notebooks were saved with), checked from a
# second container on the same network.
buildah run --isolation chroot "$probe" -- python3 docker/lab_check.py "http://127.0.0.1:$LAB_PORT" "$token" \
    notebooks/01_dnn.ipynb || { tail -n 30 "$WORK/lab.log" >&2; fail "JupyterLab failed the lab check (above)"; }
cmp -s "$WORK/host/notebooks/01_dnn.ipynb" notebooks/01_dnn.ipynb ||
    fail "notebooks/01_dnn.ipynb changed when opened and saved in the image's JupyterLab"
api -X PUT -H 'Content-Type: application/json' \
    --data '{"type": "notebook", "content": {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}}' \
    "http://127.0.0.1:$LAB_PORT/api/contents/notebooks/docker-test-saved.ipynb" >/dev/null ||
    fail "JupyterLab could not save a notebook into notebooks/"
[ -f "$WORK/host/notebooks/docker-test-saved.ipynb" ] ||
    fail "a notebook saved in JupyterLab did not reach the mounted notebooks/ folder"
for log in smoke.log lab.log; do
    ! grep -q "without encryption" "$WORK/$log" ||
        fail "a kernel ran over TCP without encryption ($log: $(grep -m1 "without encryption" "$WORK/$log" | cut -c1-120))"
done
echo "JupyterLab: page, settings, an encrypted python3 kernel, notebooks unchanged by opening and saving, saving into the mounted notebooks/"
kill -TERM -- "-$lab_pid" 2>/dev/null || true
wait "$lab_pid" 2>/dev/null || true
lab_pid=

printf '\ndocker-test: PASS in %ss (%s base, torch %s kept, uid %s; smoke run %ss: %s results JSON in %s, %s figures in %s, %s executed notebooks; JupyterLab ok)\n' \
    "$(($(date +%s) - started))" "$BASE_LAYOUT" "${image_torch%% *}" "$image_uid" "$smoke_seconds" \
    "${#results[@]}" "$results_dir" "${#figures[@]}" "$figures_dir" "${#executed[@]}"
