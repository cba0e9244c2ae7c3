#!/usr/bin/env bash
# The accelerator figures of docs/speed.md in one run on a CUDA machine, from the repo root:
#   bash benchmarks/device_check.sh            # about 10 minutes on an H200 host (16 cores)
#   TINY=1 bash benchmarks/device_check.sh     # a minute's dry run of every step, any machine
# Wheels for what the machine lacks (gymnasium, mujoco, mujoco-core, glfw, pyopengl, minari,
# tyro, docstring-parser, typeguard, gymnasium-robotics, farama-notifications) may lie in .whl/;
# they are installed when these packages are missing. The datasets are made there, from the
# shipped behaviour policies. Everything printed also goes to $OUT/device_check.log (OUT set).
set -euo pipefail
PY="${PYTHON:-python3}"
if [ -d .whl ] && ! "$PY" -c "import gymnasium, mujoco, minari, tyro" 2>/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site:$PWD"
fi
export PYTHONPATH="${PYTHONPATH:-$PWD}" PYTHONUNBUFFERED=1
export MINARI_DATASETS_PATH="${MINARI_DATASETS_PATH:-/tmp/minari}"
export OFFRL_CACHE_DIR="${OFFRL_CACHE_DIR:-/tmp/offrl-cache}"
log="${OUT:-/tmp}/device_check.log"
if [ -n "${TINY:-}" ]; then
    data=(--steps 3000)
    speed=(--size 5000 --chunk 50 --rounds 1 --prdc-warmup 100 --cut-chunk 200 --log-every 50)
    column=(--steps 400 --eval-every 200 --eval-episodes 1 --seeds 2) groups=(3 6)
else
    data=() speed=() column=() groups=(15 45)
fi
workers=$(($(nproc) > 1 ? $(nproc) - 1 : 1))
{
    "$PY" -c "import jax; print('devices:', jax.devices(), 'jax', jax.__version__)"
    for level in medium medium-replay medium-expert; do
        time "$PY" -m offrl.cli data make "offrl/hopper/$level-v0" --workers "$workers" \
            --no-progress "${data[@]}"
    done
    "$PY" -m benchmarks.speed --agents td3bc a2pr ggdtd --prdc-task offrl/hopper/medium-v0 \
        --group "${groups[0]}" "${speed[@]}"
    "$PY" -m benchmarks.speed --agents td3bc --group-only --group "${groups[1]}" "${speed[@]}"
    "$PY" -m benchmarks.column --eval-workers "$workers" "${column[@]}"
} 2>&1 | tee "$log"
