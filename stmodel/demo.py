"""The main job, end to end on the built-in simulated reanalysis:
generate data -> statistics -> train cpu-small -> forecast the test period ->
evaluate against persistence and climatology -> maps.

Every stage writes its output whole (temporary file, then rename) and is
skipped when its output already exists, so an interrupted demo picks up where
it stopped: training resumes from its newest checkpoint.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import xarray as xr

from stmodel.data.pipeline import split_periods
from stmodel.data.readers import open_canonical
from stmodel.data.simulate import generate
from stmodel.evaluation.evaluate import evaluate_forecast
from stmodel.forecasting.checkpoint_model import CheckpointModel
from stmodel.forecasting.forecast import forecast_attrs, run_forecast
from stmodel.plot import plot_contours_over_colour, plot_truth_forecast_error, save_figure
from stmodel.training.config import load_config
from stmodel.training.trainer import train

MAP_FIELDS = (("geopotential", 500), ("temperature", 850), ("surface_pressure", None))


def _stage(title: str) -> float:
    print(f"\n== {title}", flush=True)
    return time.perf_counter()


def _done(start: float, what: str) -> None:
    print(f"   {what} ({time.perf_counter() - start:.0f} s)", flush=True)


def test_init_times(ds: xr.Dataset, lead_hours: int, every_hours: int, minimum: int) -> np.ndarray:
    """Init times in the test period whose whole forecast stays inside it."""
    period = split_periods(ds)["test"]
    times = ds["time"].sel(time=slice(period.start, period.end)).values
    last = times[-1] - np.timedelta64(lead_hours, "h")
    inits = np.arange(times[0], last + np.timedelta64(1, "h"), np.timedelta64(every_hours, "h"))
    if len(inits) < minimum:
        inits = np.linspace(0, np.searchsorted(times, last, side="right") - 1, minimum
                            ).astype(int)
        inits = times[np.unique(inits)]
    return inits.astype("datetime64[ns]")


def run_demo(out: Path, *, preset: str = "default", config_name: str = "cpu-small",
             lead_days: int = 10, init_every_hours: int = 48, min_inits: int = 20,
             steps: int | None = None, progress: bool = True) -> dict:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    timings = {}

    t = _stage(f"1/5 simulated reanalysis ({preset} preset)")
    data = generate(preset, out / "data" / f"{preset}.nc", progress=progress)
    timings["data_s"] = time.perf_counter() - t
    _done(t, f"data: {data}")

    t = _stage(f"2/5 statistics and training ({config_name})")
    config = load_config(config_name)
    workdir = out / f"train-{config.dt_hours}h"
    summary_path = workdir / "summary.json"
    target_steps = steps or config.steps
    if not (summary_path.exists() and json.loads(summary_path.read_text())["final_step"]
            >= target_steps):
        train(config, [data], workdir, steps=target_steps, progress=progress)
    summary = json.loads(summary_path.read_text())
    timings["train_s"] = time.perf_counter() - t
    _done(t, f"checkpoint: {workdir} (step {summary['final_step']}, "
             f"{summary.get('samples_per_s', float('nan')):.2f} samples/s)")

    t = _stage(f"3/5 forecasts of the test period to {lead_days} days")
    ds = open_canonical([data])
    forecast_path = out / "forecast.nc"
    model = CheckpointModel.load(workdir)
    inits = test_init_times(ds, lead_days * 24, init_every_hours, min_inits)
    if not forecast_path.exists() or forecast_path.stat().st_mtime < summary_path.stat().st_mtime:
        leads = list(range(model.dt_hours, lead_days * 24 + 1, model.dt_hours))
        run_forecast([model], ds, inits, leads, forecast_path,
                     attrs=forecast_attrs([workdir], [data], [model]), progress=progress)
    timings["forecast_s"] = time.perf_counter() - t
    _done(t, f"forecast: {forecast_path} ({len(inits)} initial times)")

    t = _stage("4/5 evaluation against persistence and climatology")
    evaluation = evaluate_forecast(forecast_path, [data], out / "evaluation",
                                   climatology_path=workdir / "stats" / "climatology.nc",
                                   show_progress=progress)
    timings["evaluate_s"] = time.perf_counter() - t
    _done(t, f"scorecard: {evaluation.csv_path}")

    t = _stage("5/5 maps")
    maps = draw_maps(ds, forecast_path, out / "maps")
    timings["maps_s"] = time.perf_counter() - t
    _done(t, f"maps: {out / 'maps'}")

    result = {"data": str(data), "checkpoint": str(workdir), "forecast": str(forecast_path),
              "scorecard": str(evaluation.csv_path),
              "skill_plots": [str(p) for p in evaluation.plot_paths],
              "maps": [str(p) for p in maps], "timings_s": timings}
    (out / "demo_summary.json").write_text(json.dumps(result, indent=2))
    return result


def draw_maps(truth: xr.Dataset, forecast_path: Path, maps_dir: Path) -> list[Path]:
    forecast = xr.open_dataset(forecast_path)
    paths = []
    for lead_hours in (72, 120):
        if lead_hours > int(forecast["prediction_timedelta"].max() / np.timedelta64(1, "h")):
            continue
        for variable, level in MAP_FIELDS:
            name = f"{variable}{level or ''}_day{lead_hours // 24}.png"
            path = maps_dir / name
            if not path.exists():
                figure = plot_truth_forecast_error(truth, forecast, variable, level=level,
                                                   time=0, lead=lead_hours)
                save_figure(figure, path)
            paths.append(path)
    path = maps_dir / "z500_over_t850_day3.png"
    if not path.exists():
        save_figure(plot_contours_over_colour(
            forecast, colour_variable="temperature", colour_level=850,
            contour_variable="geopotential", contour_level=500, time=0, lead=72), path)
    paths.append(path)
    return paths
