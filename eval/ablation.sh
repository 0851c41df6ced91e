#!/usr/bin/env bash
# Ablations for the pretrained models (24 h step): each candidate trains from scratch on the
# `pretrain` simulation at about equal compute (steps scaled by measured step time; all runs
# of a round share the 2 cores), then eval/skill.py scores Z500 / T850 at 1, 3, 5 days on 20
# initial times of the validation period. Results: eval/results/ablation.jsonl.
#   stmodel data generate --preset pretrain --out runs/pretrain.nc
#   bash eval/ablation.sh ROUND        (ROUND: 1 to 4, as in eval/results/ablation.md)
set -euo pipefail
cd "$(dirname "$0")/.."
STMODEL=${STMODEL:-.venv/bin/stmodel}
PYTHON=${PYTHON:-.venv/bin/python}
DATA=runs/pretrain.nc
ONE_YEAR=train_period=2000-01-01/2000-12-31
AUG='augment=["longitude_roll","north_south_mirror"]'
PATCH2='model_overrides={patch=[2,2,2],dim=64,heads=[2,4,4,2]}'
NODROP=model_overrides.drop_path=0.0
PRENORM=model_overrides.post_norm=false
COMMON="dt_hours=24 validate_every=0 checkpoint_every=200"

run() {  # NAME OVERRIDES...; LEADS (default 24 72 120) chooses the scored leads
  local name=$1; shift
  "$STMODEL" train --config cpu-small --data "$DATA" --workdir "runs/ablation/$name" \
      $COMMON "$@" > "runs/ablation/$name.log" 2>&1
  "$PYTHON" eval/skill.py --checkpoint "runs/ablation/$name" --data "$DATA" \
      --period validation --leads ${LEADS:-24 72 120} --name "$name" >> eval/results/ablation.jsonl
}

mkdir -p runs/ablation eval/results
case "${1:?round}" in
  1)  # loss, data and augmentation at the small preset's token size (4 runs at once)
    run base-mae-1y steps=600 "$ONE_YEAR" &
    run mse-1y steps=600 loss.kind=mse "$ONE_YEAR" &
    run mse-aug-4y steps=600 loss.kind=mse "$AUG" optimizer.ema_decay=0.995 &
    run mse-aug-4y-patch2 steps=270 loss.kind=mse "$AUG" "$PATCH2" &
    wait
    "$PYTHON" eval/skill.py --checkpoint runs/ablation/mse-aug-4y --data "$DATA" --no-ema \
        --period validation --name mse-aug-4y-no-ema >> eval/results/ablation.jsonl ;;
  2)  # what makes the network learn faster: stochastic depth, norm placement, learning rate
    run mse-1y-nodrop steps=600 loss.kind=mse "$ONE_YEAR" $NODROP &
    run mse-1y-nodrop-prenorm steps=600 loss.kind=mse "$ONE_YEAR" $NODROP $PRENORM &
    run mse-1y-nodrop-prenorm-lr2e-3 steps=600 loss.kind=mse "$ONE_YEAR" $NODROP $PRENORM \
        optimizer.learning_rate=2e-3 &
    run mse-1y-nodrop-prenorm-pressure steps=600 loss.kind=mse "$ONE_YEAR" $NODROP $PRENORM \
        loss.level_weighting=pressure &
    wait ;;
  3)  # a direct 72 h model against three steps of the 24 h one (mse-1y-nodrop)
    LEADS="72 144" run mse-1y-nodrop-72h steps=600 loss.kind=mse "$ONE_YEAR" $NODROP \
        dt_hours=72 ;;
  4)  # rollout fine-tuning of the best round-2 model against as much one-step training
    FROM=warm_start=runs/ablation/mse-1y-nodrop-prenorm-lr2e-3
    FT="optimizer.learning_rate=5e-4 optimizer.warmup_steps=10"
    run ft-rollout3 steps=100 rollout_steps=3 loss.kind=mse "$ONE_YEAR" $NODROP $PRENORM \
        $FROM $FT
    run ft-rollout1 steps=300 loss.kind=mse "$ONE_YEAR" $NODROP $PRENORM $FROM $FT ;;
  *) echo "unknown round $1" >&2; exit 2 ;;
esac
