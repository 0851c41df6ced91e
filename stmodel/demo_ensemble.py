"""The demo's ensemble stage: an ensemble of the shipped stochastic models from the
deterministic forecast's init times, its probabilistic scorecard beside the deterministic
model (scored as a one-member ensemble) and the baselines, and its plots.

Members are written once a day to 10 days (the scorecard's leads): 8 members of 20 init
times at every 6 h lead would be four times the file for no score more.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from stmodel.checkpoints.global_model import CheckpointModel
from stmodel.data.canonical import GRAVITY
from stmodel.data.pipeline import split_periods
from stmodel.evaluation import scorecard
from stmodel.evaluation.baselines import BASELINES
from stmodel.evaluation.evaluate import evaluate_forecast
from stmodel.evaluation.probabilistic_climatology import ProbabilisticClimatologyRequest
from stmodel.evaluation.scorecard import ScoreRow
from stmodel.forecasting.ensemble import Ensemble
from stmodel.forecasting.forecast import ensemble_attrs, forecast_attrs, run_forecast
from stmodel.forecasting.freshness import forecast_is_current
from stmodel.models import resolve_checkpoint
from stmodel.plot import (
    plot_plume,
    plot_probability_map,
    plot_rank_histogram,
    plot_spaghetti,
    save_figure,
)
from stmodel.plot.skill_plots import write_skill_plots

logger = logging.getLogger(__name__)

SCORECARD_NAME = "ensemble_scorecard.csv"
# What the deterministic model brings to the ensemble scorecard: its CRPS (= MAE) and RMSE.
DETERMINISTIC_METRICS = ("crps", "rmse")
PLUME_POINT = (45.0, 0.0)  # lat, lon: mid-latitudes, where the planet's weather is
Z500_CONTOUR_M = 5500.0
T850_ANOMALY_K = 2.0
MAP_LEAD_HOURS = 120  # day 5, where members have spread apart but not yet to climatology


def run_ensemble_stage(
    ds: xr.Dataset,
    data: Path,
    inits: np.ndarray,
    out: Path,
    climatology: Path,
    checkpoints: Sequence[str],
    deterministic_rows: Sequence[ScoreRow],
    *,
    members: int,
    seed: int,
    lead_days: int,
    progress: bool,
) -> dict:
    """Forecast, score and plot the ensemble; {name: path} of what it wrote."""
    models = [CheckpointModel.load(c) for c in checkpoints]
    forecast_path = out / "ensemble_forecast.nc"
    ensemble = Ensemble(members=members, seed=seed)
    attrs = forecast_attrs([str(resolve_checkpoint(c)) for c in checkpoints], [data], models)
    attrs |= ensemble_attrs(ensemble, None, models)
    # Apart from the deterministic pair's name (stmodel-24h+6h) in the shared scorecard.
    attrs["model_name"] += "-ens"
    if not forecast_is_current(forecast_path, checkpoints, attrs):
        leads = list(range(24, lead_days * 24 + 1, 24))
        run_forecast(
            models,
            ds,
            inits,
            leads,
            forecast_path,
            attrs=attrs,
            progress=progress,
            ensemble=ensemble,
        )
    evaluation = evaluate_forecast(
        forecast_path,
        [data],
        out / "evaluation_ensemble",
        climatology_path=climatology,
        show_progress=progress,
        probabilistic_climatology=ProbabilisticClimatologyRequest(
            members=_climatology_members(ds, inits, members)
        ),
    )
    with xr.open_dataset(forecast_path) as forecast:
        leads_h = set(forecast["prediction_timedelta"].values / np.timedelta64(1, "h"))
    beside = [
        row
        for row in deterministic_rows
        if row.metric in DETERMINISTIC_METRICS
        and row.forecast not in BASELINES
        and row.lead_hours in leads_h
    ]
    rows = list(evaluation.rows) + beside
    path = scorecard.write_csv(rows, out / SCORECARD_NAME)
    map_lead = min(MAP_LEAD_HOURS, lead_days * 24)
    plots = _plots(
        map_lead,
        ds,
        forecast_path,
        rows,
        evaluation.rank_histogram_path,
        climatology,
        out / "maps_ensemble",
    )
    return {
        "ensemble_forecast": str(forecast_path),
        "ensemble_scorecard": str(path),
        "ensemble_plots": [str(p) for p in plots],
    }


def _climatology_members(ds: xr.Dataset, inits: np.ndarray, members: int) -> int:
    """The ensemble's size, or fewer where the training period holds fewer states at an
    init time's hour (a short preset such as `tiny`); 0 below the two a CRPS needs."""
    period = split_periods(ds)["train"]
    times = ds["time"].sel(time=slice(period.start, period.end)).values
    hours = times.astype("datetime64[h]").astype(int) % 24
    init_hours = inits.astype("datetime64[h]").astype(int) % 24
    fewest = min(int((hours == hour).sum()) for hour in np.unique(init_hours))
    count = min(members, fewest)
    return count if count >= 2 else 0


def _z500_contour(forecast: xr.Dataset, lead: int) -> float:
    """Z500_CONTOUR_M where the first init's members cross it, else the nearest 50 m that
    they do (a planet not spun up, such as the `tiny` preset's, lies above 5,500 m)."""
    field = forecast["geopotential"].sel(level=500, prediction_timedelta=np.timedelta64(lead, "h"))
    heights = field.isel(time=0).values / GRAVITY  # [realization, latitude, longitude], m
    low, high = float(np.nanmin(heights)), float(np.nanmax(heights))
    if low < Z500_CONTOUR_M < high:
        return Z500_CONTOUR_M
    return float(np.clip(round(np.nanmedian(heights) / 50.0) * 50.0, low, high))


def _plots(
    lead: int,
    truth: xr.Dataset,
    forecast_path: Path,
    rows,
    histograms: Path,
    climatology: Path,
    out_dir: Path,
) -> list[Path]:
    """CRPS, spread-skill and RMSE against lead (the scorecard's fields), rank
    histograms, a plume, a probability map and spaghetti, as PNG."""
    paths = write_skill_plots(rows, out_dir)
    with (
        xr.open_dataset(forecast_path) as forecast,
        xr.open_dataset(climatology) as clim,
        xr.open_dataset(histograms) as ranks,
    ):
        contour = _z500_contour(forecast, lead)
        figures = {
            "rank_histogram_t850.png": plot_rank_histogram(ranks, "temperature", level=850),
            "rank_histogram_z500.png": plot_rank_histogram(ranks, "geopotential", level=500),
            "plume_t850.png": plot_plume(
                forecast, "temperature", *PLUME_POINT, level=850, time=0, truth=truth
            ),
            f"probability_t850_anomaly_gt_2K_day{lead // 24}.png": plot_probability_map(
                forecast,
                "temperature",
                T850_ANOMALY_K,
                climatology=clim,
                level=850,
                time=0,
                lead=lead,
            ),
            f"spaghetti_z500_{contour:.0f}m_day{lead // 24}.png": plot_spaghetti(
                forecast,
                "geopotential",
                contour,
                level=500,
                time=0,
                lead=lead,
                truth=truth,
            ),
        }
        paths += [save_figure(figure, out_dir / name) for name, figure in figures.items()]
    return paths
