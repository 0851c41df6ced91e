"""Rank histograms of an ensemble (WeatherBench 2's ``RankHistogram``), and their file.

The rank of the truth among M members is the number of members below it, 0..M
(M + 1 bins); where members equal the truth the rank is drawn uniformly among
the tied positions (random tie-breaking, so a discrete field such as
precipitation with many zeros does not pile up in the lowest bin). A
calibrated ensemble has a flat histogram; too little spread gives a U shape,
a bias a slope. The counts are area-weighted and normalised to sum 1 per lead.

File ``rank_histogram.nc`` in the evaluation folder: one data variable per
scored variable, dims (prediction_timedelta, [level,] rank), coordinate
``rank`` = 0..M, values the area-weighted fraction of (init time, grid point)
pairs with that rank (summing to 1 over ``rank``); the model's only (the
baselines are single deterministic forecasts). Attributes: ``model_name``,
``ensemble_size``, ``description``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from stmodel.atomic_files import atomic_path
from stmodel.evaluation.ensemble_metrics import as_members
from stmodel.evaluation.metric_base import REALIZATION_DIM, Metric
from stmodel.evaluation.metrics import INIT_DIM, weighted_spatial_mean

RANK_DIM = "rank"
FILE_NAME = "rank_histogram.nc"
SEED = 20


def _block_seed(forecast: xr.DataArray, seed: int) -> np.random.Generator:
    # Seeded from the block's first init time and lead, so a rerun or a resumed
    # evaluation (same blocks) draws the same tie-breaks.
    first_init = forecast[INIT_DIM].values.ravel()[0].astype("datetime64[s]").astype(np.int64)
    first_lead = forecast["prediction_timedelta"].values.ravel()[0].astype("timedelta64[s]")
    return np.random.default_rng([seed, int(first_init) % 2**63, int(first_lead.astype(np.int64))])


def truth_ranks(forecast: xr.DataArray, truth: xr.DataArray, rng: np.random.Generator):
    """Rank 0..M of the truth among the members per point (NaN where any input is NaN)."""
    members = as_members(forecast)
    below = (members < truth).sum(REALIZATION_DIM)
    ties = (members == truth).sum(REALIZATION_DIM)
    draws = rng.random(ties.shape)  # uniform [0, 1) per point, same dims as ties
    ranks = below + np.floor(draws * (ties + 1))
    valid = members.notnull().all(REALIZATION_DIM) & truth.notnull()
    return ranks.where(valid)


def rank_histogram_per_init(
    forecast: xr.DataArray, truth: xr.DataArray, weights: xr.DataArray, rng: np.random.Generator
) -> xr.DataArray:
    """Area-weighted fraction of grid points in each rank bin, per init time and lead."""
    size = as_members(forecast).sizes[REALIZATION_DIM]
    ranks = truth_ranks(forecast, truth, rng)
    # A NaN rank makes every bin NaN rather than silently dropping from the counts.
    counts = [
        weighted_spatial_mean((ranks == rank).astype(np.float64).where(ranks.notnull()), weights)
        for rank in range(size + 1)
    ]
    histogram = xr.concat(counts, dim=pd.Index(np.arange(size + 1), name=RANK_DIM))
    return histogram.transpose(..., RANK_DIM)


class RankHistogram(Metric):
    """Rank histogram: area-weighted counts of the truth's rank among the M members
    (M + 1 bins, ties broken at random with a seeded generator), averaged over init
    times and normalised to sum 1 per lead (and level). WeatherBench 2 ``RankHistogram``;
    Hamill (2001), MWR 129, 550-560. Not a scalar: written to ``rank_histogram.nc``."""

    name = "rank_histogram"
    title = "rank histogram"
    parts = ("rank_histogram",)
    on_members = True
    scalar = False
    for_baselines = False
    dimensionless = True

    def __init__(self, seed: int = SEED):
        self.seed = seed

    def per_init(self, forecast, truth, climatology, weights):
        rng = _block_seed(forecast, self.seed)
        return {"rank_histogram": rank_histogram_per_init(forecast, truth, weights, rng)}

    def aggregate(self, per_init):
        counts = per_init["rank_histogram"].mean(INIT_DIM, skipna=False)
        return counts / counts.sum(RANK_DIM, skipna=False)


def rank_histogram_dataset(histograms: dict[str, xr.DataArray], model_name: str) -> xr.Dataset:
    """The model's rank histograms, variable -> (prediction_timedelta, [level,] rank), as the
    Dataset of ``rank_histogram.nc`` (module docstring); no data variables when there are
    none (a deterministic forecast)."""
    dataset = xr.Dataset(histograms)
    if not histograms:
        dataset.attrs = {"model_name": model_name}
        return dataset
    order = [dim for dim in ("prediction_timedelta", "level", RANK_DIM) if dim in dataset.dims]
    dataset = dataset.transpose(*order)
    dataset.attrs = {
        "model_name": model_name,
        "ensemble_size": int(dataset.sizes[RANK_DIM] - 1),
        "description": "area-weighted fraction of (init time, grid point) pairs where the "
        "truth has the given rank among the ensemble members (0: below all, M: above all; "
        "ties broken at random), normalised to sum 1 over rank per lead and level",
    }
    return dataset


def write_rank_histograms(
    histograms: dict[str, xr.DataArray], model_name: str, path: str | Path
) -> Path:
    """Write the model's rank histograms (:func:`rank_histogram_dataset`) to ``path``."""
    dataset = rank_histogram_dataset(histograms, model_name)
    with atomic_path(Path(path)) as temporary:
        dataset.to_netcdf(temporary)
    return Path(path)
