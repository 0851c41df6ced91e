"""The metrics `stmodel evaluate` knows, by name, and which of them a forecast gets.

Adding a metric is one :class:`~stmodel.evaluation.metric_base.Metric` subclass
and one entry in :data:`REGISTRY`. A deterministic forecast gets
:data:`DETERMINISTIC` (rmse, acc, bias); one with a ``realization`` dim (members)
also gets :data:`PROBABILISTIC`, and its deterministic scores are those of the
ensemble mean (the WeatherBench 2 convention). Persistence and climatology are
scored as one-member ensembles (their CRPS is their MAE, their spread 0); beside an
ensemble the probabilistic climatology is an ensemble baseline
(:mod:`stmodel.evaluation.probabilistic_climatology`).
"""

from __future__ import annotations

from collections.abc import Sequence

import xarray as xr

from stmodel.errors import UserError
from stmodel.evaluation.ensemble_metrics import (
    Crps,
    CrpsEcdf,
    EnsembleMeanRmse,
    Spread,
    SpreadSkillRatio,
)
from stmodel.evaluation.metric_base import REALIZATION_DIM, Metric
from stmodel.evaluation.metrics import Acc, Bias, Rmse
from stmodel.evaluation.rank_histogram import RankHistogram

REGISTRY: dict[str, Metric] = {
    metric.name: metric
    for metric in (
        Rmse(),
        Acc(),
        Bias(),
        Crps(),
        CrpsEcdf(),
        EnsembleMeanRmse(),
        Spread(),
        SpreadSkillRatio(),
        RankHistogram(),
    )
}
DETERMINISTIC = ("rmse", "acc", "bias")
PROBABILISTIC = (
    "crps",
    "crps_ecdf",
    "ensemble_mean_rmse",
    "spread",
    "spread_skill_ratio",
    "rank_histogram",
)


def is_ensemble(forecast: xr.DataArray | xr.Dataset) -> bool:
    return REALIZATION_DIM in forecast.dims


def default_metric_names(forecast: xr.DataArray | xr.Dataset) -> tuple[str, ...]:
    """rmse, acc, bias; and the probabilistic set where the forecast has members."""
    return DETERMINISTIC + PROBABILISTIC if is_ensemble(forecast) else DETERMINISTIC


def resolve(names: Sequence[str]) -> list[Metric]:
    """The registry's metrics of these names, in that order."""
    unknown = [name for name in names if name not in REGISTRY]
    if unknown:
        raise UserError(f"unknown metrics {unknown}; the known ones are {list(REGISTRY)}")
    return [REGISTRY[name] for name in dict.fromkeys(names)]


def scalar_names(scores: xr.Dataset) -> list[str]:
    """Names of the scorecard metrics (one value per lead) present, in registry order."""
    return [name for name, metric in REGISTRY.items() if metric.scalar and name in scores]
