"""The ensemble skill bar: an ensemble's probabilistic scores beside the deterministic model's,
checked against the bar of the calibrated-ensemble issue, as one JSON line and a table.

    python eval/ensemble_skill.py --ensemble runs/ens-24h [runs/ens-6h] \
        --deterministic stmodel-small-24h stmodel-small-6h --data runs/pretrain.nc \
        --period test --members 8 --seed 1
    python eval/ensemble_skill.py --ensemble stmodel-small-24h stmodel-small-6h --perturb 0.5 ...
    python eval/ensemble_skill.py --ensemble stmodel-small-24h --lag-hours 24 ...

Both forecasts start from the same evenly spaced init times of the period (eval/skill.py's
choice) and are scored with `stmodel evaluate`'s code and cell-area latitude weights:
the ensemble's fair CRPS, ensemble-mean RMSE, unbiased spread-skill ratio and day-5 rank
histogram, the deterministic model's MAE (its CRPS as a one-member ensemble) and RMSE,
and the climatology's RMSE. The bar, for Z500 and T850:

- unbiased spread-skill ratio within 0.8 to 1.25 at days 1, 3, 5 and 10;
- CRPS / deterministic MAE at most 0.85, 0.80, 0.80, 0.75 at days 1, 3, 5, 10;
- ensemble-mean RMSE no worse than the deterministic RMSE from day 3 on, and below the
  climatology's at day 10;
- the two outer bins of the day-5 rank histogram together at most 2 x 2 / (M + 1).

Exit status 0 when every check holds, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import xarray as xr

from stmodel.checkpoints.global_model import CheckpointModel
from stmodel.data.readers import open_canonical
from stmodel.evaluation.baselines import BASELINES
from stmodel.evaluation.evaluate import evaluate_forecast
from stmodel.forecasting.ensemble import Ensemble
from stmodel.forecasting.forecast import run_forecast
from stmodel.models import resolve_checkpoint

sys.path.insert(0, str(Path(__file__).parent))
from skill import FIELDS, init_times

LEADS = (24, 72, 120, 240)
SSR_RANGE = (0.8, 1.25)
CRPS_OVER_MAE = {24: 0.85, 72: 0.80, 120: 0.80, 240: 0.75}
RANK_LEAD = 120


def _scores(evaluation, metrics: dict[str, str]) -> dict:
    """{field: {lead: {label: value}}} of the rows of these metrics (labels: metrics[name]
    for the model, '<baseline>_<label>' for the baselines)."""
    out: dict = {}
    for row in evaluation.rows:
        for name, level, short in FIELDS:
            if row.variable != name or row.level != level or row.metric not in metrics:
                continue
            label = metrics[row.metric]
            if row.forecast in BASELINES:
                label = f"{row.forecast}_{label}"
            out.setdefault(short, {}).setdefault(row.lead_hours, {})[label] = float(row.value)
    return out


def _outer_bins(path: Path, lead_hours: int) -> dict[str, float]:
    with xr.open_dataset(path) as histograms:
        out = {}
        for name, level, short in FIELDS:
            counts = histograms[name].sel(
                level=level, prediction_timedelta=np.timedelta64(lead_hours, "h")
            )
            out[short] = float(counts.isel(rank=0) + counts.isel(rank=-1))
        return out


def ensemble_skill(
    ensemble: list[str],
    deterministic: list[str],
    data: list[str],
    period: str,
    members: int,
    seed: int,
    count: int,
    climatology: str | None,
    perturb: float = 0.0,
    lag_hours: int | None = None,
) -> dict:
    """The scores of the bar. ``ensemble``: stochastic models, or deterministic ones with
    ``perturb`` (perturbed initial conditions) or ``lag_hours`` (a lagged ensemble of
    ``members`` init times this far apart), the two cheap baselines."""
    ds = open_canonical(data)
    lagged = (members, lag_hours) if lag_hours else None
    inits = init_times(ds, period, max(LEADS), count)
    scores: dict = {}
    with tempfile.TemporaryDirectory() as scratch:
        runs = {
            "ensemble": (
                ensemble,
                Ensemble(members=1 if lagged else members, seed=seed, perturb=perturb),
                [
                    "crps",
                    "ensemble_mean_rmse",
                    "spread_skill_ratio",
                    "spread",
                    "rank_histogram",
                    "rmse",
                ],
            ),
            "deterministic": (deterministic, None, ["crps", "rmse"]),
        }
        histogram = None
        for role, (checkpoints, how, metrics) in runs.items():
            models = [CheckpointModel.load(resolve_checkpoint(c)) for c in checkpoints]
            forecast = Path(scratch) / f"{role}.nc"
            run_forecast(
                models,
                ds,
                inits,
                list(LEADS),
                forecast,
                progress=False,
                ensemble=how,
                lagged=lagged if role == "ensemble" else None,
            )
            evaluation = evaluate_forecast(
                forecast,
                data,
                Path(scratch) / role,
                climatology_path=climatology,
                variables=[name for name, _, _ in FIELDS],
                show_progress=False,
                metrics=metrics,
            )
            labels = {m: m if role == "ensemble" else f"deterministic_{m}" for m in metrics}
            if role == "deterministic":
                labels["crps"] = "deterministic_mae"  # a one-member ensemble's CRPS
            for short, per_lead in _scores(evaluation, labels).items():
                for lead, values in per_lead.items():
                    scores.setdefault(short, {}).setdefault(lead, {}).update(values)
            if evaluation.rank_histogram_path is not None:
                histogram = _outer_bins(evaluation.rank_histogram_path, RANK_LEAD)
    return {"inits": len(inits), "scores": scores, "rank_outer_bins_day5": histogram}


def checks(result: dict, members: int) -> list[tuple[str, float, str, bool]]:
    """(what, value, bar, holds) for every point of the bar."""
    out = []
    for short, per_lead in result["scores"].items():
        for lead in LEADS:
            s = per_lead[lead]
            day = f"{short} day {lead // 24}"
            ssr = s["spread_skill_ratio"]
            out.append((f"{day} SSR", ssr, "0.8..1.25", SSR_RANGE[0] <= ssr <= SSR_RANGE[1]))
            ratio = s["crps"] / s["deterministic_mae"]
            bar = CRPS_OVER_MAE[lead]
            out.append((f"{day} CRPS/det MAE", ratio, f"<= {bar}", ratio <= bar))
            if lead >= 72:
                rmse, det = s["ensemble_mean_rmse"], s["deterministic_rmse"]
                out.append((f"{day} ens-mean RMSE/det RMSE", rmse / det, "<= 1", rmse <= det))
            if lead == 240:
                clim = s["climatology_rmse"]
                out.append((f"{day} ens-mean RMSE/clim RMSE", rmse / clim, "< 1", rmse < clim))
        outer = result["rank_outer_bins_day5"][short]
        bar = 2 * 2 / (members + 1)
        out.append((f"{short} day 5 rank outer bins", outer, f"<= {bar:.3f}", outer <= bar))
    return out


def table(lines: list[dict]) -> str:
    """A markdown table of results (this script's JSON lines): per field, the spread-skill
    ratio, CRPS / deterministic MAE and ensemble-mean RMSE / deterministic RMSE at days
    1, 3, 5 and 10, and how many points of the bar fail."""
    days = " / ".join(str(lead // 24) for lead in LEADS)
    head = f"| run | field | SSR, days {days} | CRPS / det MAE | ens-mean / det RMSE | fails |"
    out = [head, "|---|---|---|---|---|---|"]
    for line in lines:
        fails = sum(not check["holds"] for check in line["checks"])
        for short, per_lead in line["scores"].items():
            s = [per_lead[str(lead)] for lead in LEADS]
            ssr = " / ".join(f"{x['spread_skill_ratio']:.2f}" for x in s)
            crps = " / ".join(f"{x['crps'] / x['deterministic_mae']:.2f}" for x in s)
            mean = " / ".join(f"{x['ensemble_mean_rmse'] / x['deterministic_rmse']:.2f}" for x in s)
            out.append(f"| {line['name']} | {short} | {ssr} | {crps} | {mean} | {fails} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["--table"]:  # --table RESULTS.jsonl: print the markdown table
        print(table([json.loads(line) for line in Path(argv[1]).read_text().splitlines()]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ensemble", nargs="+", required=True, help="stochastic models")
    parser.add_argument(
        "--deterministic", nargs="+", default=["stmodel-small-24h", "stmodel-small-6h"]
    )
    parser.add_argument("--data", nargs="+", required=True)
    parser.add_argument("--period", default="test", choices=("validation", "test"))
    parser.add_argument("--members", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--inits", type=int, default=20, help="number of initial times")
    parser.add_argument("--climatology", default=None, help="climatology.nc (default: derived)")
    parser.add_argument("--name", default="")
    parser.add_argument(
        "--perturb", type=float, default=0.0, help="perturbed initial conditions (x diff_std)"
    )
    parser.add_argument("--lag-hours", type=int, default=None, help="a lagged ensemble")
    args = parser.parse_args(argv)
    result = ensemble_skill(
        args.ensemble,
        args.deterministic,
        args.data,
        args.period,
        args.members,
        args.seed,
        args.inits,
        args.climatology,
        args.perturb,
        args.lag_hours,
    )
    rows = checks(result, args.members)
    for what, value, bar, holds in rows:
        print(f"{what:<36} {value:8.3f}  {bar:<10} {'ok' if holds else 'FAILS'}", file=sys.stderr)
    result["checks"] = [
        {"what": w, "value": round(v, 4), "bar": b, "holds": h} for w, v, b, h in rows
    ]
    print(json.dumps({"name": args.name, "ensemble": args.ensemble, **result}), flush=True)
    return 0 if all(h for *_, h in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
