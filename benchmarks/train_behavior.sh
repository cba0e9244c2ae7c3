#!/usr/bin/env bash
# The SAC runs behind the shipped behaviour policies (issue 3). Rerun to resume from checkpoints;
# ship each with `offrl behavior ship --run OUT/<env> --env <Env>-v5` once it beats its bar.
# One single-threaded XLA run per core: on 2 cores the updates, not the envs, are the bottleneck.
#
# `train_behavior.sh OUT replay` then re-runs the start of the hopper and halfcheetah runs (up to
# their medium snapshots, 70k and 50k steps) saving a snapshot every 2.5k / 2k steps, for about
# 20 medium-replay phases: ship with `--replay-run OUT/<env>-replay`. A resumed run starts a fresh
# episode and leaves the original trajectory (ship then refuses it): if one is interrupted,
# delete its folder and start it again.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-runs/behavior}"
mkdir -p "$OUT"
export XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
run() {  # env steps name core [flags...]
  local env=$1 steps=$2 name=$3 core=$4
  shift 4
  nohup nice -n 5 taskset -c "$core" .venv/bin/offrl behavior train --env "$env" --steps "$steps" \
    --out "$OUT/$name" --no-progress "$@" >>"$OUT/$name.log" 2>&1 &
}
if [[ "${2:-}" == replay ]]; then
  run Hopper-v5 70000 hopper-replay 0 --eval-every 2500 --checkpoint-every 10000
  run HalfCheetah-v5 50000 halfcheetah-replay 1 --eval-every 2000 --checkpoint-every 10000
  exit 0
fi
run Hopper-v5 1000000 hopper 0
run HalfCheetah-v5 1500000 halfcheetah 1
# Snapshots every 5k steps (about 20 medium-replay phases), checkpoints every 10k.
run Walker2d-v5 1000000 walker2d 0 --eval-every 5000 --checkpoint-every 10000
