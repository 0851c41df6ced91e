"""Probabilistic metrics: cross-checked with scores and xskillscore, and on known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from stmodel.errors import UserError
from stmodel.evaluation import crps as crps_kernel
from stmodel.evaluation import ensemble_metrics, metric_registry, metrics
from stmodel.evaluation.area_weights import area_weights
from stmodel.evaluation.metric_base import REALIZATION_DIM, Metric
from stmodel.evaluation.rank_histogram import RankHistogram, rank_histogram_per_init
from stmodel.evaluation.scoring import aggregate

LATITUDE = np.linspace(-80.0, 80.0, 9)
LONGITUDE = np.arange(0.0, 360.0, 30.0)


def _ensemble(members: int = 4, inits: int = 3, leads: int = 2, seed: int = 0, scale=1.0):
    """Members and truth drawn from one distribution (a calibrated ensemble), float64."""
    rng = np.random.default_rng(seed)
    coords = {
        "time": pd.date_range("2020-01-01", periods=inits, freq="12h"),
        "prediction_timedelta": pd.to_timedelta(np.arange(1, leads + 1) * 6, unit="h"),
        "latitude": LATITUDE,
        "longitude": LONGITUDE,
    }
    shape = (inits, leads, LATITUDE.size, LONGITUDE.size)
    dims = ("time", "prediction_timedelta", "latitude", "longitude")
    centre = rng.normal(size=shape)  # shared by members and truth
    truth = xr.DataArray(centre + scale * rng.normal(size=shape), coords=coords, dims=dims)
    forecast = xr.DataArray(
        centre[:, :, None] + scale * rng.normal(size=(shape[0], shape[1], members, *shape[2:])),
        coords={**coords, REALIZATION_DIM: np.arange(members)},
        dims=("time", "prediction_timedelta", REALIZATION_DIM, "latitude", "longitude"),
    )  # [time, lead, member, lat, lon]
    return forecast, truth, area_weights(forecast["latitude"])


def _score(names, forecast, truth, weights):
    chosen = metric_registry.resolve(names)
    parts: dict[str, xr.DataArray] = {}
    for metric in chosen:
        parts.update(metric.per_init(forecast, truth, None, weights))
    return aggregate(xr.Dataset(parts), names)


@pytest.mark.parametrize("size", [1, 7, crps_kernel.PAIRWISE_MEMBERS + 5])
def test_pairwise_sum_from_sorted_members_matches_the_double_sum(size):
    # 7 members: summed pair by pair; more than PAIRWISE_MEMBERS: from the sorted members.
    members = np.random.default_rng(1).normal(size=(5, size))  # [point, member]
    brute = np.abs(members[:, :, None] - members[:, None, :]).sum(axis=(1, 2))
    summed = crps_kernel.pairwise_abs_sum(members, member_axis=-1)
    np.testing.assert_allclose(summed, brute, rtol=1e-13, atol=1e-13)


def test_fair_crps_matches_scores_library():
    scores_probability = pytest.importorskip("scores.probability")
    forecast, truth, weights = _ensemble()
    per_init = ensemble_metrics.crps_per_init(forecast, truth, weights, fair=True)
    # scores weights as xarray's weighted mean, sum(w x) / sum(w): the same as our mean of
    # w x with weights of mean 1, per init, and over inits (each init the same total weight).
    expected = scores_probability.crps_for_ensemble(
        forecast,
        truth,
        ensemble_member_dim=REALIZATION_DIM,
        method="fair",
        weights=weights,
        preserve_dims=["time", "prediction_timedelta"],
    )
    np.testing.assert_allclose(per_init, expected.transpose(*per_init.dims), rtol=1e-10)
    overall = scores_probability.crps_for_ensemble(
        forecast,
        truth,
        ensemble_member_dim=REALIZATION_DIM,
        method="fair",
        weights=weights,
        reduce_dims=["time", "latitude", "longitude"],
    )
    scored = _score(["crps"], forecast, truth, weights)["crps"]
    np.testing.assert_allclose(scored, overall.transpose(*scored.dims), rtol=1e-10)


def test_ecdf_crps_matches_xskillscore():
    xskillscore = pytest.importorskip("xskillscore")
    forecast, truth, weights = _ensemble(members=5, seed=2)
    per_init = ensemble_metrics.crps_per_init(forecast, truth, weights, fair=False)
    expected = xskillscore.crps_ensemble(
        truth,
        forecast,
        member_dim=REALIZATION_DIM,
        weights=weights.broadcast_like(truth),
        dim=["latitude", "longitude"],
    )
    np.testing.assert_allclose(per_init, expected.transpose(*per_init.dims), rtol=1e-10)


def test_ecdf_crps_matches_scores_library_too():
    scores_probability = pytest.importorskip("scores.probability")
    forecast, truth, weights = _ensemble(members=3, seed=3)
    expected = scores_probability.crps_for_ensemble(
        forecast,
        truth,
        ensemble_member_dim=REALIZATION_DIM,
        method="ecdf",
        weights=weights,
        preserve_dims=["time", "prediction_timedelta"],
    )
    per_init = ensemble_metrics.crps_per_init(forecast, truth, weights, fair=False)
    np.testing.assert_allclose(per_init, expected.transpose(*per_init.dims), rtol=1e-10)


@pytest.mark.parametrize("name", ["crps", "crps_ecdf"])
def test_crps_of_a_deterministic_forecast_is_its_mae(name):
    forecast, truth, weights = _ensemble()
    deterministic = forecast.isel({REALIZATION_DIM: 0}, drop=True)
    crps = _score([name], deterministic, truth, weights)[name]
    mae = metrics.weighted_spatial_mean(abs(deterministic - truth), weights).mean("time")
    np.testing.assert_allclose(crps, mae, rtol=1e-12)
    # ... and the same as a one-member ensemble.
    one_member = forecast.isel({REALIZATION_DIM: [0]})
    np.testing.assert_allclose(_score([name], one_member, truth, weights)[name], crps, rtol=1e-14)


def test_fair_crps_is_below_the_ecdf_crps_by_the_spread_difference():
    forecast, truth, weights = _ensemble()
    scored = _score(["crps", "crps_ecdf"], forecast, truth, weights)
    assert (scored["crps"] < scored["crps_ecdf"]).all()


def test_spread_and_ensemble_mean_rmse_by_hand():
    forecast, truth, weights = _ensemble(members=4)
    scored = _score(
        ["spread", "ensemble_mean_rmse", "spread_skill_ratio"], forecast, truth, weights
    )
    values, observed = forecast.values, truth.values  # [time, lead, member, lat, lon]
    w = weights.values[:, None]  # [lat, 1]
    variance = values.var(axis=2, ddof=1)  # [time, lead, lat, lon]
    error = (values.mean(axis=2) - observed) ** 2
    mean_variance = (variance * w).mean(axis=(-2, -1)).mean(axis=0)  # [lead]
    mean_error = (error * w).mean(axis=(-2, -1)).mean(axis=0)
    np.testing.assert_allclose(scored["spread"], np.sqrt(mean_variance), rtol=1e-12)
    np.testing.assert_allclose(scored["ensemble_mean_rmse"], np.sqrt(mean_error), rtol=1e-12)
    np.testing.assert_allclose(
        scored["spread_skill_ratio"],
        np.sqrt(mean_variance) / np.sqrt(mean_error - mean_variance / 4),
        rtol=1e-12,
    )


def test_unbiased_spread_skill_ratio_of_a_calibrated_ensemble_is_one():
    # Truth exchangeable with the members: the unbiased SSR is 1, the plain one
    # (spread / ensemble-mean RMSE) sqrt(M / (M+1)), the ensemble mean's error var / M high.
    forecast, truth, weights = _ensemble(members=4, inits=60, leads=1, seed=4)
    scored = _score(
        ["spread", "ensemble_mean_rmse", "spread_skill_ratio"], forecast, truth, weights
    )
    ratio = float(scored["spread_skill_ratio"].squeeze())
    assert ratio == pytest.approx(1.0, abs=0.03)
    plain = float((scored["spread"] / scored["ensemble_mean_rmse"]).squeeze())
    assert plain == pytest.approx(np.sqrt(4 / 5), abs=0.03)


def test_spread_skill_ratio_of_an_underdispersive_ensemble_is_below_one():
    forecast, truth, weights = _ensemble(members=4, inits=30, leads=1, seed=5)
    squeezed = forecast.mean(REALIZATION_DIM) + 0.5 * (forecast - forecast.mean(REALIZATION_DIM))
    ratio = float(_score(["spread_skill_ratio"], squeezed, truth, weights).to_dataarray().max())
    assert ratio < 0.7


def test_rank_histogram_of_a_calibrated_ensemble_is_flat():
    forecast, truth, weights = _ensemble(members=4, inits=60, leads=2, seed=6)
    histogram = _score(["rank_histogram"], forecast, truth, weights)["rank_histogram"]
    assert histogram.dims == ("prediction_timedelta", "rank")
    np.testing.assert_array_equal(histogram["rank"], np.arange(5))
    np.testing.assert_allclose(histogram.sum("rank"), 1.0, rtol=1e-12)
    np.testing.assert_allclose(histogram, 0.2, atol=0.02)


def test_truth_outside_all_members_lands_in_the_outer_bins():
    forecast, truth, weights = _ensemble(members=4)
    above = _score(["rank_histogram"], forecast, truth + 100.0, weights)["rank_histogram"]
    below = _score(["rank_histogram"], forecast, truth - 100.0, weights)["rank_histogram"]
    np.testing.assert_allclose(above.sel(rank=4), 1.0)
    np.testing.assert_allclose(above.sel(rank=[0, 1, 2, 3]), 0.0)
    np.testing.assert_allclose(below.sel(rank=0), 1.0)


def test_rank_histogram_breaks_ties_at_random_reproducibly():
    forecast, truth, weights = _ensemble(members=3)
    tied = xr.zeros_like(forecast)  # every member equals the truth: any rank is as likely
    truth = xr.zeros_like(truth)

    def counts(seed):
        rng = np.random.default_rng(seed)
        return rank_histogram_per_init(tied, truth, weights, rng).mean(["time"])

    np.testing.assert_array_equal(counts(1), counts(1))
    assert not np.array_equal(counts(1), counts(2))
    np.testing.assert_allclose(counts(1), 0.25, atol=0.12)
    metric = RankHistogram(seed=7)
    first = metric.per_init(tied, truth, None, weights)["rank_histogram"]
    again = metric.per_init(tied, truth, None, weights)["rank_histogram"]
    np.testing.assert_array_equal(first, again)


def test_nan_in_the_members_gives_nan_not_a_flattering_score():
    forecast, truth, weights = _ensemble()
    forecast = forecast.copy()
    forecast[0, 0, 1, 2, 3] = np.nan
    scored = _score(["crps", "spread", "rank_histogram"], forecast, truth, weights)
    assert np.isnan(scored["crps"].isel(prediction_timedelta=0))
    assert np.isfinite(scored["crps"].isel(prediction_timedelta=1))
    assert np.isnan(scored["rank_histogram"].isel(prediction_timedelta=0)).all()


def test_registry_entries_are_named_documented_metrics():
    for name, metric in metric_registry.REGISTRY.items():
        assert isinstance(metric, Metric)
        assert metric.name == name
        assert type(metric).__doc__ and len(type(metric).__doc__) > 40, name
    assert set(metric_registry.DETERMINISTIC + metric_registry.PROBABILISTIC) == set(
        metric_registry.REGISTRY
    )


def test_default_metrics_depend_on_the_realization_dim():
    forecast, _, _ = _ensemble()
    assert metric_registry.default_metric_names(forecast) == (
        metric_registry.DETERMINISTIC + metric_registry.PROBABILISTIC
    )
    deterministic = forecast.isel({REALIZATION_DIM: 0}, drop=True)
    assert metric_registry.default_metric_names(deterministic) == ("rmse", "acc", "bias")


def test_unknown_metric_is_a_user_error():
    with pytest.raises(UserError, match="unknown metrics \\['crsp'\\]"):
        metric_registry.resolve(["rmse", "crsp"])
