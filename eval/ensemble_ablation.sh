#!/usr/bin/env bash
# Ablations of the stochastic 24 h model (the calibrated-ensemble issue): noise kind, members
# per sample M, the CRPS's alpha, each a short one-step CRPS fine-tune of the shipped
# deterministic stmodel-small-24h (equal steps, 200, the shipped recipe's other settings), and
# the two cheap baselines of the deterministic model (perturbed initial conditions, a lagged
# ensemble). Rollout length is the shipped recipe's own two stages (one step, then four).
# Each is scored by eval/ensemble_skill.py on the test period of the pretraining data
# (20 initial times, 8 members, seed 1) into eval/results/ensemble_ablation.jsonl; the cost
# of each (training seconds per step) is in its runs/ensemble-ablation/NAME/summary.json.
#   stmodel data generate --preset pretrain --out runs/pretrain.nc
#   bash eval/ensemble_ablation.sh train|baselines
set -euo pipefail
cd "$(dirname "$0")/.."
STMODEL=${STMODEL:-.venv/bin/stmodel}
PYTHON=${PYTHON:-.venv/bin/python}
DATA=runs/pretrain.nc
OUT=eval/results/ensemble_ablation.jsonl
STATS=${STATS:-runs/ensemble-small-24h-rollout/stats}  # the 24 h statistics, computed once

skill() {  # NAME ENSEMBLE-ARGS...
  local name=$1; shift
  "$PYTHON" eval/ensemble_skill.py "$@" --data "$DATA" --period test --members 8 --seed 1 \
      --name "$name" >> "$OUT" 2> "runs/ensemble-ablation/$name.skill.log" || true
}

run() {  # NAME OVERRIDES...: train, then score
  local name=$1; shift
  mkdir -p "runs/ensemble-ablation/$name" && cp -rn "$STATS" "runs/ensemble-ablation/$name/"
  "$STMODEL" train --config ensemble-small-24h --data "$DATA" \
      --workdir "runs/ensemble-ablation/$name" --quiet warm_start=stmodel-small-24h steps=200 \
      validate_every=0 "$@" > "runs/ensemble-ablation/$name.log" 2>&1
  skill "$name" --ensemble "runs/ensemble-ablation/$name"
}

mkdir -p runs/ensemble-ablation eval/results
case "${1:?train or baselines}" in
  train)
    run global-m2-a095 &
    run field-m2-a095 model_overrides.noise_kind=global+field &
    wait
    run global-m4-a095 method.members=4 &
    run global-m2-a100 method.alpha=1.0 &
    wait ;;
  baselines)
    skill perturbed-0.5 --ensemble stmodel-small-24h stmodel-small-6h --perturb 0.5
    skill lagged-24h --ensemble stmodel-small-24h --lag-hours 24 ;;
esac
