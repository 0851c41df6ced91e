"""Z500 / T850 skill of trained models on one period of a dataset, as one JSON line.

    python eval/skill.py --checkpoint runs/a-24h [runs/a-6h] --data runs/pretrain.nc \
        --period validation --leads 24 72 120 --name a

Forecasts from evenly spaced initial times of the period (the checkpoints combined
hierarchically, as `stmodel forecast` does), scores them with `stmodel evaluate`'s
code, and prints latitude-weighted RMSE of the model, persistence and climatology
(the climatology of the first checkpoint's training statistics) at each lead, with
the model's ratio to persistence. Used for the ablations and the skill bar.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from stmodel.checkpoints.global_model import CheckpointModel
from stmodel.data.pipeline import split_periods
from stmodel.data.readers import open_canonical
from stmodel.evaluation.evaluate import evaluate_forecast
from stmodel.forecasting.forecast import run_forecast
from stmodel.models import resolve_checkpoint

FIELDS = (("geopotential", 500, "z500"), ("temperature", 850, "t850"))


def init_times(ds, period: str, longest_lead: int, count: int) -> np.ndarray:
    """`count` init times spread evenly over the period, each with its whole forecast inside."""
    span = split_periods(ds)[period]
    times = ds["time"].sel(time=slice(span.start, span.end)).values
    last = np.searchsorted(times, times[-1] - np.timedelta64(longest_lead, "h"), side="right")
    return times[np.unique(np.linspace(0, last - 1, count).astype(int))]


def skill(
    checkpoints: list[str],
    data: list[str],
    period: str,
    leads: list[int],
    count: int,
    climatology: str | None = None,
    use_ema: bool = True,
) -> dict:
    directories = [resolve_checkpoint(c) for c in checkpoints]
    models = [CheckpointModel.load(d, use_ema=use_ema) for d in directories]
    ds = open_canonical(data)
    inits = init_times(ds, period, max(leads), count)
    with tempfile.TemporaryDirectory() as scratch:
        forecast = Path(scratch) / "forecast.nc"
        run_forecast(models, ds, inits, leads, forecast, progress=False)
        evaluation = evaluate_forecast(
            forecast,
            data,
            Path(scratch) / "evaluation",
            climatology_path=climatology,
            variables=[name for name, _, _ in FIELDS],
            show_progress=False,
        )
    scores = {}
    for row in evaluation.rows:
        for name, level, short in FIELDS:
            if row.variable == name and row.level == level and row.metric == "rmse":
                role = (
                    "model" if row.forecast not in ("persistence", "climatology") else row.forecast
                )
                scores.setdefault(short, {}).setdefault(f"{row.lead_hours}h", {})[role] = round(
                    float(row.value), 3
                )
    for per_lead in scores.values():
        for values in per_lead.values():
            values["ratio_to_persistence"] = round(values["model"] / values["persistence"], 3)
    return {
        "checkpoints": checkpoints,
        "steps": [m.step for m in models],
        "ema": use_ema,
        "data": data,
        "period": period,
        "inits": len(inits),
        "rmse": scores,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--checkpoint", nargs="+", required=True, help="workdirs or shipped model names"
    )
    parser.add_argument("--data", nargs="+", required=True)
    parser.add_argument("--period", default="validation", choices=("validation", "test"))
    parser.add_argument("--leads", nargs="+", type=int, default=[24, 72, 120])
    parser.add_argument("--inits", type=int, default=20, help="number of initial times")
    parser.add_argument(
        "--climatology",
        default=None,
        help="climatology.nc from `stmodel data stats` (default: the first "
        "checkpoint's training statistics, where it has them)",
    )
    parser.add_argument(
        "--no-ema",
        action="store_true",
        help="the raw parameters of runs that also kept an EMA of them",
    )
    parser.add_argument("--name", default="", help="label for the output line")
    args = parser.parse_args(argv)
    climatology = args.climatology
    if climatology is None:
        own = resolve_checkpoint(args.checkpoint[0]) / "stats" / "climatology.nc"
        climatology = str(own) if own.exists() else None
    result = skill(
        args.checkpoint,
        args.data,
        args.period,
        args.leads,
        args.inits,
        climatology,
        use_ema=not args.no_ema,
    )
    print(json.dumps({"name": args.name, **result}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
