"""Probabilistic scores of an ensemble (members along ``realization``), area-weighted.

Same conventions as :mod:`stmodel.evaluation.metrics`: a per-init part reduced
over the grid with the area weights (mean 1 over latitude), then an aggregate
over init times. A forecast without a ``realization`` dim is a one-member
ensemble: its CRPS is its mean absolute error, its spread 0 (and so its spread-skill
ratio), as for persistence and the climatology.

References: WeatherBench 2 (Rasp et al. 2024, sec. 4.2 and its ``metrics.py``);
Ferro (2014), "Fair scores for ensemble forecasts", QJRMS 140, 1917-1923;
Fortin et al. (2014), "Why should ensemble spread match the RMSE of the
ensemble mean?", J. Hydrometeorology 15, 1708-1713; WeatherBench-X
``UnbiasedSpreadSkillRatio``.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from stmodel.evaluation.crps import crps
from stmodel.evaluation.metric_base import REALIZATION_DIM, Metric
from stmodel.evaluation.metrics import INIT_DIM, mse_per_init, weighted_spatial_mean


def as_members(forecast: xr.DataArray) -> xr.DataArray:
    """The forecast with a ``realization`` dim, of length 1 for a deterministic one."""
    if REALIZATION_DIM in forecast.dims:
        return forecast
    return forecast.expand_dims({REALIZATION_DIM: 1})


def crps_per_init(
    forecast: xr.DataArray, truth: xr.DataArray, weights: xr.DataArray, fair: bool = True
) -> xr.DataArray:
    """Area-weighted mean over the grid of the ensemble CRPS, per init time and lead.

    Per grid point, with members X_1..X_M and truth Y:
    CRPS = (1/M) sum_i |X_i - Y| - c sum_{i,j} |X_i - X_j|, with c = 1/(2 M (M-1)) for the
    fair CRPS (Ferro 2014; WeatherBench 2's ``CRPS``, an unbiased estimate of the CRPS of
    the distribution the members are drawn from) or c = 1/(2 M^2) for the CRPS of the
    members' empirical CDF (``fair=False``). A single member has no spread term: its CRPS
    is its MAE. The per-point kernel is :func:`stmodel.evaluation.crps.crps` (alpha 1 or
    0), the one training's CRPS loss uses.
    """
    members = as_members(forecast)
    # The truth on every dim of one member (a broadcast view, no copy), as the kernel wants.
    truth = truth.broadcast_like(members.isel({REALIZATION_DIM: 0}, drop=True))
    score = xr.apply_ufunc(
        crps,
        members,
        truth,
        input_core_dims=[[REALIZATION_DIM], []],
        kwargs={"member_axis": -1, "alpha": 1.0 if fair else 0.0},
    )
    return weighted_spatial_mean(score, weights)


def member_variance(members: xr.DataArray) -> xr.DataArray:
    """Variance of the members per grid point, ddof 1; 0 for a single member (a
    deterministic forecast claims no uncertainty; the 0/0 of ddof 1 is taken as 0)."""
    if members.sizes[REALIZATION_DIM] < 2:
        member = members.isel({REALIZATION_DIM: 0}, drop=True)
        return xr.zeros_like(member).where(member.notnull())  # NaN stays NaN
    return members.var(REALIZATION_DIM, ddof=1, skipna=False)


def unbiased_spread_skill_ratio(
    variance: xr.DataArray | float, ensemble_mean_mse: xr.DataArray | float, members: int
) -> xr.DataArray | float:
    """SSR = sqrt(var) / sqrt(MSE_mean - var / M), var the mean member variance (ddof 1)
    and MSE_mean the mean squared error of the ensemble mean (WeatherBench-X
    ``UnbiasedSpreadSkillRatio``; Fortin et al. 2014): the one definition evaluation
    (:class:`SpreadSkillRatio`) and training's validation report.

    NaN where the debiased skill is not positive (the mean erred less than sampling alone
    would make it, by chance in a small sample); 0 for one member (no spread).
    """
    skill = ensemble_mean_mse - variance / members
    return np.sqrt(variance) / np.sqrt(xr.where(skill > 0, skill, np.nan))


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
    (WeatherBench 2's ``SpreadSkillRatio`` numerator). 0 for one member."""

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
    0 for one member (no spread); the formula is :func:`unbiased_spread_skill_ratio`.
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
        return unbiased_spread_skill_ratio(variance, mse, size)
