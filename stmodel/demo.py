"""The main job, end to end on the built-in simulated reanalysis:
generate data -> statistics -> forecast the test period with the shipped pretrained
24 h + 6 h models (or, with `train=True`, train cpu-small (6 h) and a 24 h model
from it first) -> evaluate against persistence and climatology -> maps -> an ensemble
of the shipped stochastic models, its probabilistic scorecard and plots
(stmodel.demo_ensemble).

Every stage writes its output whole (temporary file, then rename) and is
skipped when its output already exists, so an interrupted demo picks up where
it stopped: training resumes from its newest checkpoint. Only the evaluation
(half a minute) is always redone.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import xarray as xr

from stmodel.atomic_files import make_folder
from stmodel.checkpoints.global_model import CheckpointModel
from stmodel.data.pipeline import split_periods
from stmodel.data.readers import open_canonical
from stmodel.data.statistics import StatisticsRequest, compute_or_reuse
from stmodel.demo_ensemble import run_ensemble_stage
from stmodel.errors import Interrupted, UserError
from stmodel.evaluation.evaluate import evaluate_forecast
from stmodel.forecasting.forecast import forecast_attrs, run_forecast
from stmodel.forecasting.freshness import forecast_is_current
from stmodel.models import DEFAULT_ENSEMBLE_MODELS, DEFAULT_MODELS
from stmodel.plot import plot_contours_over_colour, plot_truth_forecast_error, save_figure
from stmodel.plot.skill_plots import write_skill_plots
from stmodel.simulation import generate
from stmodel.training.config import load_config
from stmodel.training.forecasting_task import train

logger = logging.getLogger(__name__)

MAP_FIELDS = (("geopotential", 500), ("temperature", 850), ("surface_pressure", None))


def _stage(title: str) -> float:
    logger.info("== %s", title)
    return time.perf_counter()


def _done(start: float, what: str) -> None:
    logger.info("   %s (%.0f s)", what, time.perf_counter() - start)


def test_init_times(ds: xr.Dataset, lead_hours: int, every_hours: int, minimum: int) -> np.ndarray:
    """Init times in the test period whose whole forecast stays inside it."""
    period = split_periods(ds)["test"]
    times = ds["time"].sel(time=slice(period.start, period.end)).values
    last = times[-1] - np.timedelta64(lead_hours, "h")
    if len(times) == 0 or last < times[0]:
        raise UserError(
            f"the test period {period.start}/{period.end} is shorter than the "
            f"{lead_hours} h lead: choose a shorter --lead-days"
        )
    inits = np.arange(times[0], last + np.timedelta64(1, "h"), np.timedelta64(every_hours, "h"))
    if len(inits) < minimum:
        inits = np.linspace(0, np.searchsorted(times, last, side="right") - 1, minimum).astype(int)
        inits = times[np.unique(inits)]
    return inits.astype("datetime64[ns]")


def run_demo(
    out: Path,
    *,
    preset: str = "default",
    train_models: bool = False,
    config_name: str = "cpu-small",
    config_24h_name: str = "cpu-small-24h",
    pretrained: tuple[str, ...] = DEFAULT_MODELS,
    lead_days: int = 10,
    init_every_hours: int = 48,
    min_inits: int = 20,
    steps: int | None = None,
    steps_24h: int | None = None,
    members: int = 8,
    ensemble_models: tuple[str, ...] = DEFAULT_ENSEMBLE_MODELS,
    seed: int = 0,
    progress: bool = True,
) -> dict:
    out = Path(out)
    make_folder(out, "--out folder")
    timings = {}

    t = _stage(f"1/6 simulated reanalysis ({preset} preset)")
    (out / "data").mkdir(exist_ok=True)
    data = generate(preset, out / "data" / f"{preset}.nc", progress=progress)
    timings["data_s"] = time.perf_counter() - t
    _done(t, f"data: {data}")

    if train_models:
        t = _stage(
            f"2/6 statistics and training ({config_name}, then {config_24h_name} "
            "warm-started from it)"
        )
        workdir = _train_once(load_config(config_name), data, out, steps, progress)
        # The 24 h model cuts the number of autoregressive steps to day 3 from 12 to 3
        # (Pangu's hierarchical temporal aggregation): errors compound less.
        workdir_24h = _train_once(
            load_config(config_24h_name, [f"warm_start={workdir}"]), data, out, steps_24h, progress
        )
        checkpoints = [str(workdir_24h), str(workdir)]
        climatology = workdir / "stats" / "climatology.nc"
        timings["train_s"] = time.perf_counter() - t
    else:
        t = _stage(
            f"2/6 statistics of the training period; pretrained models {' + '.join(pretrained)}"
        )
        checkpoints = list(pretrained)
        climatology = _climatology(data, out / "stats", progress)
        timings["stats_s"] = time.perf_counter() - t
        _done(t, f"climatology: {climatology}")

    t = _stage(f"3/6 forecasts of the test period to {lead_days} days")
    ds = open_canonical([data])
    forecast_path = out / "forecast.nc"
    models = [CheckpointModel.load(c) for c in checkpoints]
    inits = test_init_times(ds, lead_days * 24, init_every_hours, min_inits)
    attrs = forecast_attrs(checkpoints, [data], models)
    if not forecast_is_current(forecast_path, checkpoints, {"checkpoints": attrs["checkpoints"]}):
        step_hours = min(m.dt_hours for m in models)
        leads = list(range(step_hours, lead_days * 24 + 1, step_hours))
        run_forecast(models, ds, inits, leads, forecast_path, attrs=attrs, progress=progress)
    timings["forecast_s"] = time.perf_counter() - t
    _done(t, f"forecast: {forecast_path} ({len(inits)} initial times)")

    t = _stage("4/6 evaluation against persistence and climatology")
    evaluation = evaluate_forecast(
        forecast_path,
        [data],
        out / "evaluation",
        climatology_path=climatology,
        show_progress=progress,
        # The CRPS of one forecast is its MAE: what the ensemble's CRPS is compared with.
        metrics=("rmse", "acc", "bias", "crps"),
    )
    skill_plots = write_skill_plots(evaluation.rows, out / "evaluation")
    timings["evaluate_s"] = time.perf_counter() - t
    _done(t, f"scorecard: {evaluation.csv_path}")

    t = _stage("5/6 maps")
    maps = draw_maps(ds, forecast_path, out / "maps")
    timings["maps_s"] = time.perf_counter() - t
    _done(t, f"maps: {out / 'maps'}")

    ensemble = {}
    if members > 1 and not train_models:
        t = _stage(f"6/6 {members}-member ensemble of {' + '.join(ensemble_models)}")
        ensemble = run_ensemble_stage(
            ds,
            data,
            inits,
            out,
            climatology,
            ensemble_models,
            evaluation.rows,
            members=members,
            seed=seed,
            lead_days=lead_days,
            progress=progress,
        )
        timings["ensemble_s"] = time.perf_counter() - t
        _done(t, f"ensemble scorecard: {ensemble['ensemble_scorecard']}")
    else:
        logger.info("== 6/6 no ensemble (%s)", "trained models" if train_models else "--members 1")

    result = {
        "data": str(data),
        "checkpoints": checkpoints,
        "forecast": str(forecast_path),
        "scorecard": str(evaluation.csv_path),
        "skill_plots": [str(p) for p in skill_plots],
        "maps": [str(p) for p in maps],
        **ensemble,
        "timings_s": timings,
    }
    (out / "demo_summary.json").write_text(json.dumps(result, indent=2))
    return result


def _climatology(data: Path, out_dir: Path, progress: bool) -> Path:
    """The training period's climatology (reused when already computed from the same data)."""
    ds = open_canonical([data])
    period = split_periods(ds)["train"]
    _, climatology, _ = compute_or_reuse(
        ds, StatisticsRequest(period.start, period.end, 6), out_dir, progress=progress
    )
    return climatology


def _train_once(config, data: Path, out: Path, steps: int | None, progress: bool) -> Path:
    """Train into out/train-{dt}h unless a finished run is there; resumes a partial one."""
    workdir = out / f"train-{config.dt_hours}h"
    summary_path = workdir / "summary.json"
    target_steps = steps or config.steps
    if not (
        summary_path.exists() and json.loads(summary_path.read_text())["final_step"] >= target_steps
    ):
        result = train(config, [data], workdir, steps=target_steps, progress=progress)
        if result.stopped_by:
            raise Interrupted(
                result.stopped_by,
                f"training stopped at step {result.step} (saved in {workdir}); "
                "run the same command to resume",
            )
    summary = json.loads(summary_path.read_text())
    logger.info(
        "   checkpoint: %s (step %s, %.2f samples/s)",
        workdir,
        summary["final_step"],
        summary.get("samples_per_s", float("nan")),
    )
    return workdir


def draw_maps(truth: xr.Dataset, forecast_path: Path, maps_dir: Path) -> list[Path]:
    forecast = xr.open_dataset(forecast_path)
    longest = int(forecast["prediction_timedelta"].max() / np.timedelta64(1, "h"))
    map_leads = [lead for lead in (72, 120) if lead <= longest] or [longest]
    paths = []
    for lead_hours in map_leads:
        for variable, level in MAP_FIELDS:
            path = maps_dir / f"{variable}{level or ''}_{_lead_label(lead_hours)}.png"
            if not path.exists():
                figure = plot_truth_forecast_error(
                    truth, forecast, variable, level=level, time=0, lead=lead_hours
                )
                save_figure(figure, path)
            paths.append(path)
    path = maps_dir / f"z500_over_t850_{_lead_label(map_leads[0])}.png"
    if not path.exists():
        save_figure(
            plot_contours_over_colour(
                forecast,
                colour_variable="temperature",
                colour_level=850,
                contour_variable="geopotential",
                contour_level=500,
                time=0,
                lead=map_leads[0],
            ),
            path,
        )
    paths.append(path)
    return paths


def _lead_label(hours: int) -> str:
    return f"day{hours // 24}" if hours % 24 == 0 else f"{hours}h"
