"""RMSE, ACC and bias with explicit area weights (WeatherBench 2 conventions).

The functions are the formulas; :class:`Rmse`, :class:`Acc` and :class:`Bias`
wrap them as registry metrics (:mod:`stmodel.evaluation.metric_registry`).
For an ensemble forecast they score the ensemble mean (WeatherBench 2).

Each metric comes in two parts: a ``*_per_init`` function that reduces over
space only (so large evaluations can be done block by block over init times
and leads and stitched together), and an aggregate over init times.
Inputs are aligned DataArrays or Datasets in the forecast layout; ``weights``
is :func:`stmodel.evaluation.area_weights.area_weights` of the latitude
(mean 1, so a plain mean of ``weights * field`` is the area-weighted mean).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np
import xarray as xr

from stmodel.evaluation.metric_base import Metric

SPATIAL_DIMS = ("latitude", "longitude")
INIT_DIM = "time"

Field = TypeVar("Field", xr.DataArray, xr.Dataset)


def weighted_spatial_mean(
    field: Field, weights: xr.DataArray, spatial_dims: Sequence[str] = SPATIAL_DIMS
) -> Field:
    """Area-weighted mean over the grid (weights have mean 1 over latitude).

    Missing values are not skipped: a forecast with NaNs scores NaN rather
    than a flattering mean over the points it happens to have.
    """
    return (field * weights).mean(list(spatial_dims), skipna=False)


def mse_per_init(
    forecast: Field, truth: Field, weights: xr.DataArray, spatial_dims: Sequence[str] = SPATIAL_DIMS
) -> Field:
    """Weighted spatial mean of the squared error, for every init time and lead."""
    return weighted_spatial_mean((forecast - truth) ** 2, weights, spatial_dims)


def rmse_from_mse(mse: Field, init_dim: str = INIT_DIM) -> Field:
    """Square root of the mean over init times: the root is taken last (ECMWF, WB2)."""
    return np.sqrt(mse.mean(init_dim, skipna=False))


def rmse(
    forecast: Field,
    truth: Field,
    weights: xr.DataArray,
    spatial_dims: Sequence[str] = SPATIAL_DIMS,
    init_dim: str = INIT_DIM,
) -> Field:
    """Latitude-weighted RMSE over init times, per lead (and level)."""
    return rmse_from_mse(mse_per_init(forecast, truth, weights, spatial_dims), init_dim)


def acc_per_init(
    forecast: Field,
    truth: Field,
    climatology: Field,
    weights: xr.DataArray,
    spatial_dims: Sequence[str] = SPATIAL_DIMS,
) -> Field:
    """Anomaly correlation per init time, anomalies not re-centred.

    sum(w f' o') / sqrt(sum(w f'^2) sum(w o'^2)) with f' = forecast - climatology
    and o' = truth - climatology. It is undefined (NaN) where either anomaly is
    zero everywhere, as for the climatology forecast itself.
    """
    forecast_anomaly = forecast - climatology
    truth_anomaly = truth - climatology
    covariance = weighted_spatial_mean(forecast_anomaly * truth_anomaly, weights, spatial_dims)
    forecast_power = weighted_spatial_mean(forecast_anomaly**2, weights, spatial_dims)
    truth_power = weighted_spatial_mean(truth_anomaly**2, weights, spatial_dims)
    denominator = np.sqrt(forecast_power * truth_power)
    return covariance / denominator.where(denominator > 0)


def acc(
    forecast: Field,
    truth: Field,
    climatology: Field,
    weights: xr.DataArray,
    spatial_dims: Sequence[str] = SPATIAL_DIMS,
    init_dim: str = INIT_DIM,
) -> Field:
    """Anomaly correlation coefficient, the per-init values averaged over init times."""
    return acc_per_init(forecast, truth, climatology, weights, spatial_dims).mean(
        init_dim, skipna=False
    )


def bias_per_init(
    forecast: Field, truth: Field, weights: xr.DataArray, spatial_dims: Sequence[str] = SPATIAL_DIMS
) -> Field:
    """Weighted spatial mean of forecast - truth, for every init time and lead."""
    return weighted_spatial_mean(forecast - truth, weights, spatial_dims)


def bias(
    forecast: Field,
    truth: Field,
    weights: xr.DataArray,
    spatial_dims: Sequence[str] = SPATIAL_DIMS,
    init_dim: str = INIT_DIM,
) -> Field:
    """Weighted mean of forecast - truth over the grid and init times."""
    return bias_per_init(forecast, truth, weights, spatial_dims).mean(init_dim, skipna=False)


class Rmse(Metric):
    """Root mean squared error, root taken after the mean over init times.

    RMSE = sqrt(mean_t mean_area w (f - o)^2), per lead (and level); the per-init
    part is the area-weighted MSE. WeatherBench 2 (Rasp et al. 2024, eq. 1).
    """

    name = "rmse"
    title = "RMSE"
    parts = ("mse",)

    def per_init(self, forecast, truth, climatology, weights):
        return {"mse": mse_per_init(forecast, truth, weights)}

    def aggregate(self, per_init):
        return rmse_from_mse(per_init["mse"])


class Acc(Metric):
    """Anomaly correlation coefficient, the mean over init times of the per-init ACC.

    ACC_t = sum(w f' o') / sqrt(sum(w f'^2) sum(w o'^2)), f' = f - c, o' = o - c
    against the climatology c, not re-centred. WeatherBench 2 (Rasp et al. 2024, eq. 3).
    """

    name = "acc"
    title = "ACC"
    parts = ("acc",)
    needs_climatology = True
    higher_is_better = True
    dimensionless = True

    def per_init(self, forecast, truth, climatology, weights):
        return {"acc": acc_per_init(forecast, truth, climatology, weights)}

    def aggregate(self, per_init):
        return per_init["acc"].mean(INIT_DIM, skipna=False)


class Bias(Metric):
    """Mean error, mean_t mean_area w (f - o): positive where the forecast is too high."""

    name = "bias"
    title = "bias"
    parts = ("bias",)
    signed = True

    def per_init(self, forecast, truth, climatology, weights):
        return {"bias": bias_per_init(forecast, truth, weights)}

    def aggregate(self, per_init):
        return per_init["bias"].mean(INIT_DIM, skipna=False)
