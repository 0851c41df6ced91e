"""Probabilistic scores of an ensemble (members along ``realization``), area-weighted.

Same conventions as :mod:`stmodel.evaluation.metrics`: a per-init part reduced
over the grid with the area weights (mean 1 over latitude), then an aggregate
over init times. A forecast without a ``realization`` dim is a one-member
ensemble: its CRPS is its mean absolute error, its spread undefined (NaN).

References: WeatherBench 2 (Rasp et al. 2024, sec. 4.2 and its ``metrics.py``);
Ferro (2014), "Fair scores for ensemble forecasts", QJRMS 140, 1917-1923;
Fortin et al. (2014), "Why should ensemble spread match the RMSE of the
ensemble mean?", J. Hydrometeorology 15, 1708-1713; WeatherBench-X
``UnbiasedSpreadSkillRatio``.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from stmodel.evaluation.metric_base import REALIZATION_DIM, Metric
from stmodel.evaluation.metrics import INIT_DIM, mse_per_init, weighted_spatial_mean


def as_members(forecast: xr.DataArray) -> xr.DataArray:
    """The forecast with a ``realization`` dim, of length 1 for a deterministic one."""
    if REALIZATION_DIM in forecast.dims:
        return forecast
    return forecast.expand_dims({REALIZATION_DIM: 1})


def _pairwise_abs_sum(members: np.ndarray) -> np.ndarray:
    """sum_{i,j} |x_i - x_j| over the last axis, in O(M log M) instead of O(M^2).

    With the members sorted, x_(k) is the larger of a pair with the k below it and
    the smaller with the M-1-k above, so sum_{i,j} |x_i - x_j| = 2 sum_k (2k - M + 1) x_(k).
    """
    size = members.shape[-1]
    coefficients = 2.0 * np.arange(size) - size + 1  # [member]
    return 2.0 * (np.sort(members, axis=-1) @ coefficients)


def crps_per_init(
    forecast: xr.DataArray, truth: xr.DataArray, weights: xr.DataArray, fair: bool = True
) -> xr.DataArray:
    """Area-weighted mean over the grid of the ensemble CRPS, per init time and lead.

    Per grid point, with members X_1..X_M and truth Y:
    CRPS = (1/M) sum_i |X_i - Y| - c sum_{i,j} |X_i - X_j|, with c = 1/(2 M (M-1)) for the
    fair CRPS (Ferro 2014; WeatherBench 2's ``CRPS``, an unbiased estimate of the CRPS of
    the distribution the members are drawn from) or c = 1/(2 M^2) for the CRPS of the
    members' empirical CDF (``fair=False``). A single member has no spread term (c = 0
    for the fair CRPS, where the formula's 0/0 is undefined): its CRPS is its MAE.
    """
    members = as_members(forecast)
    size = members.sizes[REALIZATION_DIM]
    skill = abs(members - truth).mean(REALIZATION_DIM, skipna=False)
    spread = xr.apply_ufunc(_pairwise_abs_sum, members, input_core_dims=[[REALIZATION_DIM]])
    if fair:
        coefficient = 0.0 if size == 1 else 1.0 / (2 * size * (size - 1))
    else:
        coefficient = 1.0 / (2 * size**2)
    return weighted_spatial_mean(skill - coefficient * spread, weights)


def member_variance(members: xr.DataArray) -> xr.DataArray:
    """Variance of the members per grid point, ddof 1; NaN for a single member."""
    if members.sizes[REALIZATION_DIM] < 2:
        return xr.full_like(members.isel({REALIZATION_DIM: 0}, drop=True), np.nan)
    return members.var(REALIZATION_DIM, ddof=1, skipna=False)


ENSEMBLE_PARTS = ("ensemble_mean_mse", "ensemble_variance", "ensemble_size")


def ensemble_parts(
    forecast: xr.DataArray, truth: xr.DataArray, weights: xr.DataArray
) -> dict[str, xr.DataArray]:
    """Per init: area-weighted MSE of the ensemble mean, area-weighted member variance
    (ddof 1) and the number of members M (constant, kept so aggregates need no more)."""
    members = as_members(forecast)
    mse = mse_per_init(members.mean(REALIZATION_DIM, skipna=False), truth, weights)
    variance = weighted_spatial_mean(member_variance(members), weights)
    size = xr.full_like(mse, float(members.sizes[REALIZATION_DIM]))
    return {"ensemble_mean_mse": mse, "ensemble_variance": variance, "ensemble_size": size}


class Crps(Metric):
    """Fair CRPS (WeatherBench 2): per grid point mean_i |X_i - Y| - sum_{i,j} |X_i - X_j|
    / (2 M (M-1)), area-weighted over the grid, then averaged over init times.
    Ferro (2014); Rasp et al. (2024), eq. 11. One member: the MAE."""

    name = "crps"
    title = "CRPS"
    parts = ("crps",)
    on_members = True

    def per_init(self, forecast, truth, climatology, weights):
        return {"crps": crps_per_init(forecast, truth, weights, fair=True)}

    def aggregate(self, per_init):
        return per_init["crps"].mean(INIT_DIM, skipna=False)


class CrpsEcdf(Metric):
    """CRPS of the members' empirical CDF: mean_i |X_i - Y| - sum_{i,j} |X_i - X_j| / (2 M^2),
    area-weighted, averaged over init times (Gneiting and Raftery 2007; ``properscoring``,
    ``xskillscore.crps_ensemble``). Biased high for small M against the fair CRPS."""

    name = "crps_ecdf"
    title = "CRPS (ECDF)"
    parts = ("crps_ecdf",)
    on_members = True

    def per_init(self, forecast, truth, climatology, weights):
        return {"crps_ecdf": crps_per_init(forecast, truth, weights, fair=False)}

    def aggregate(self, per_init):
        return per_init["crps_ecdf"].mean(INIT_DIM, skipna=False)


class EnsembleMeanRmse(Metric):
    """RMSE of the ensemble mean: sqrt(mean_t mean_area w (mean_i X_i - Y)^2)."""

    name = "ensemble_mean_rmse"
    title = "ens. mean RMSE"
    parts = ENSEMBLE_PARTS
    on_members = True

    def per_init(self, forecast, truth, climatology, weights):
        return ensemble_parts(forecast, truth, weights)

    def aggregate(self, per_init):
        return np.sqrt(per_init["ensemble_mean_mse"].mean(INIT_DIM, skipna=False))


class Spread(Metric):
    """Ensemble spread: sqrt(mean_t mean_area w var_i(X_i)), the variance with ddof 1
    (WeatherBench 2's ``SpreadSkillRatio`` numerator). Undefined for one member."""

    name = "spread"
    title = "spread"
    parts = ENSEMBLE_PARTS
    on_members = True

    def per_init(self, forecast, truth, climatology, weights):
        return ensemble_parts(forecast, truth, weights)

    def aggregate(self, per_init):
        return np.sqrt(per_init["ensemble_variance"].mean(INIT_DIM, skipna=False))


class SpreadSkillRatio(Metric):
    """Unbiased spread-skill ratio (WeatherBench-X ``UnbiasedSpreadSkillRatio``):

    SSR = sqrt(mean(var)) / sqrt(mean(MSE_mean - var / M)),

    var the member variance (ddof 1) and MSE_mean the squared error of the ensemble
    mean, both means area-weighted over the grid and over init times. For a
    perfectly calibrated ensemble (truth exchangeable with the members) it is 1.

    Why ``- var / M``: the mean of M members differs from the distribution's mean by
    sampling error of variance var / M, so a finite ensemble's ensemble-mean MSE
    exceeds that of the infinite ensemble by var / M; without the correction a
    perfect M-member ensemble scores sqrt(M / (M+1)) < 1, not 1 (Fortin et al. 2014).

    Why against the ensemble-mean RMSE and not the members' RMSE: for a calibrated
    ensemble, the truth is one more draw from the members' distribution, so its
    expected squared distance from the ensemble mean is the spread (var, up to the
    var / M above), while a single member's expected squared error is about twice the
    variance (member and truth both vary), which would give SSR near 1/sqrt(2).
    Undefined (NaN) for one member.
    """

    name = "spread_skill_ratio"
    title = "spread/skill"
    parts = ENSEMBLE_PARTS
    on_members = True
    dimensionless = True

    def per_init(self, forecast, truth, climatology, weights):
        return ensemble_parts(forecast, truth, weights)

    def aggregate(self, per_init):
        variance = per_init["ensemble_variance"].mean(INIT_DIM, skipna=False)
        mse = per_init["ensemble_mean_mse"].mean(INIT_DIM, skipna=False)
        size = per_init["ensemble_size"].max(INIT_DIM)  # the same at every init
        skill = mse - variance / size
        # A non-positive debiased skill (the mean errs less than sampling alone would make
        # it, by chance in a small sample) has no square root: NaN, not a warning.
        return np.sqrt(variance) / np.sqrt(skill.where(skill > 0))
