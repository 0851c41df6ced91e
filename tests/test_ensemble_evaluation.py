"""`stmodel evaluate` of ensemble forecasts (a realization dim), on tiny hand-made files."""

from __future__ import annotations

import argparse
import csv

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import stmodel
from stmodel.commands import evaluate as evaluate_command
from stmodel.evaluation import metric_registry, partial_scores
from stmodel.evaluation.area_weights import area_weights
from stmodel.evaluation.evaluate import evaluate_forecast
from stmodel.evaluation.forecast_layout import open_forecast
from stmodel.evaluation.metric_base import REALIZATION_DIM
from stmodel.evaluation.rank_histogram import FILE_NAME as RANK_HISTOGRAM_FILE
from stmodel.evaluation.scoring import bytes_per_field

LATITUDE = np.array([-67.5, -22.5, 22.5, 67.5])  # a global 4 x 8 grid
LONGITUDE = 45.0 * np.arange(8)
LEVELS = [500, 850]
# From a week before the first init: the probabilistic climatology draws its 4 members per
# valid time from the truth before it (no train_period attribute), +-7 days, same hour.
TRUTH_TIMES = pd.date_range("2021-02-24", "2021-03-04", freq="6h")
INITS = pd.date_range("2021-03-02", periods=3, freq="12h")
LEADS = pd.to_timedelta([6, 12], unit="h")
MEMBERS = 4
PROBABILISTIC_SCALARS = ["crps", "crps_ecdf", "ensemble_mean_rmse", "spread", "spread_skill_ratio"]


def _truth() -> xr.Dataset:
    """Noise about a plausible mean, float32 as the readers give it."""
    rng = np.random.default_rng(0)
    shape = (TRUTH_TIMES.size, LEVELS.__len__(), LATITUDE.size, LONGITUDE.size)
    return xr.Dataset(
        {
            "temperature": (
                ("time", "level", "lat", "lon"),
                (270.0 + 5.0 * rng.normal(size=shape)).astype(np.float32),
            ),
            "surface_pressure": (
                ("time", "lat", "lon"),
                (1.0e5 + 500.0 * rng.normal(size=(shape[0], *shape[2:]))).astype(np.float32),
            ),
        },
        coords={"time": TRUTH_TIMES.values, "level": LEVELS, "lat": LATITUDE, "lon": LONGITUDE},
    )


def _ensemble(truth: xr.Dataset) -> xr.Dataset:
    """Truth at the valid times plus an error shared by the members and one of each: a
    calibrated ensemble; members first, as some tools write them."""
    rng = np.random.default_rng(1)
    valid = xr.DataArray(INITS.values, dims="time", coords={"time": INITS.values}) + xr.DataArray(
        LEADS.values, dims="prediction_timedelta", coords={"prediction_timedelta": LEADS.values}
    )
    forecast = truth.sel(time=valid).rename(lat="latitude", lon="longitude")
    forecast = forecast.drop_vars("time").assign_coords(time=INITS.values)
    forecast = forecast.expand_dims({REALIZATION_DIM: np.arange(MEMBERS)})
    for name in forecast.data_vars:
        spread = 0.5 * float(truth[name].std())
        shared = rng.normal(size=forecast[name].isel({REALIZATION_DIM: 0}).shape)
        own = rng.normal(size=forecast[name].shape)
        forecast[name] = forecast[name] + spread * (shared + own)
    forecast.attrs["model_name"] = "toyens"
    return forecast


def _run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="stmodel")
    evaluate_command.register(parser.add_subparsers(required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def _rows(path) -> dict[tuple, float]:
    with open(path, newline="") as stream:
        return {
            (r["variable"], r["level"], r["lead_hours"], r["metric"], r["forecast"]): float(
                r["value"]
            )
            for r in csv.DictReader(stream)
        }


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ensemble")
    truth = _truth()
    truth.to_netcdf(folder / "truth.nc")
    forecast = _ensemble(truth)
    forecast.to_netcdf(folder / "ensemble.nc")
    mean = forecast.mean(REALIZATION_DIM)
    mean.attrs["model_name"] = "toyens"
    mean.to_netcdf(folder / "mean.nc")
    climatology = truth.sel(time=truth["time"] < INITS[0]).groupby("time.hour").mean("time")
    climatology.attrs["climatology_kind"] = "hour"
    climatology.to_netcdf(folder / "climatology.nc")
    return {"folder": folder, "truth_data": truth, "forecast_data": forecast}


def _evaluate(files, forecast: str, out: str, *extra: str) -> dict[tuple, float]:
    folder = files["folder"]
    argv = ["evaluate", "--forecast", str(folder / forecast), "--truth", str(folder / "truth.nc")]
    argv += ["--climatology", str(folder / "climatology.nc"), "--out", str(folder / out)]
    assert _run_cli([*argv, "--quiet", *extra]) == 0
    return _rows(folder / out / "scorecard.csv")


@pytest.fixture(scope="module")
def ensemble_rows(files):
    return _evaluate(files, "ensemble.nc", "scored")


def test_open_forecast_puts_members_after_the_init_time(files):
    forecast = open_forecast(files["folder"] / "ensemble.nc")
    assert forecast["temperature"].dims == (
        "time",
        REALIZATION_DIM,
        "prediction_timedelta",
        "level",
        "latitude",
        "longitude",
    )


def test_ensemble_scorecard_has_the_probabilistic_metrics(ensemble_rows):
    metrics = list(dict.fromkeys(key[3] for key in ensemble_rows))
    assert metrics == ["rmse", "acc", "bias", *PROBABILISTIC_SCALARS]
    key = ("temperature", "850", "12", "crps", "toyens")
    assert 0 < ensemble_rows[key] < ensemble_rows[key[:3] + ("crps", "persistence")]
    assert 0 < ensemble_rows[("surface_pressure", "", "6", "spread_skill_ratio", "toyens")]


def test_deterministic_scores_of_an_ensemble_are_those_of_its_mean(files, ensemble_rows):
    mean_rows = _evaluate(files, "mean.nc", "scored_mean")
    assert {key[3] for key in mean_rows} == {"rmse", "acc", "bias"}
    for key, value in mean_rows.items():
        np.testing.assert_allclose(ensemble_rows[key], value, rtol=1e-6, err_msg=str(key))
        if key[3] == "rmse" and key[4] == "toyens":
            ensemble_mean = ensemble_rows[key[:3] + ("ensemble_mean_rmse", "toyens")]
            np.testing.assert_allclose(ensemble_mean, ensemble_rows[key], rtol=1e-12)


def test_baselines_are_one_member_ensembles(files, ensemble_rows):
    truth = files["truth_data"]["surface_pressure"].rename(lat="latitude", lon="longitude")
    weights = area_weights(truth["latitude"])
    lead = LEADS[1]
    persisted = truth.sel(time=INITS).values.astype(np.float64)  # [time, lat, lon]
    observed = truth.sel(time=INITS + lead).values.astype(np.float64)
    mae = (np.abs(persisted - observed) * weights.values[:, None]).mean(axis=(1, 2)).mean()
    for metric in ("crps", "crps_ecdf"):
        key = ("surface_pressure", "", "12", metric, "persistence")
        np.testing.assert_allclose(ensemble_rows[key], mae, rtol=1e-12)
    # One member: no spread, so a spread-skill ratio of 0 (a deterministic forecast claims
    # no uncertainty).
    for baseline in ("persistence", "climatology"):
        for metric in ("spread", "spread_skill_ratio"):
            assert ensemble_rows[("surface_pressure", "", "12", metric, baseline)] == 0.0


def test_rank_histograms_are_written_per_variable(files, ensemble_rows):
    with xr.open_dataset(files["folder"] / "scored" / RANK_HISTOGRAM_FILE) as written:
        histograms = written.load()
    assert histograms["temperature"].dims == ("prediction_timedelta", "level", "rank")
    assert histograms["surface_pressure"].dims == ("prediction_timedelta", "rank")
    np.testing.assert_array_equal(histograms["rank"], np.arange(MEMBERS + 1))
    np.testing.assert_allclose(histograms["temperature"].sum("rank"), 1.0, rtol=1e-12)
    assert histograms.attrs["model_name"] == "toyens"
    assert histograms.attrs["ensemble_size"] == MEMBERS


def test_deterministic_forecast_writes_no_rank_histogram(files, ensemble_rows):
    _evaluate(files, "mean.nc", "scored_mean_again")
    assert not (files["folder"] / "scored_mean_again" / RANK_HISTOGRAM_FILE).exists()


def test_deterministic_forecast_with_probabilistic_metrics_scores_crps_as_mae(files):
    rows = _evaluate(files, "mean.nc", "scored_mean_crps", "--metrics", "crps", "bias")
    assert {key[3] for key in rows} == {"crps", "bias"}
    truth = files["truth_data"]["temperature"].sel(level=500)
    truth = truth.rename(lat="latitude", lon="longitude")
    mean = files["forecast_data"]["temperature"].sel(level=500).mean(REALIZATION_DIM)
    error = abs(mean.isel(prediction_timedelta=0) - truth.sel(time=INITS + LEADS[0]).values)
    mae = (error * area_weights(truth["latitude"])).mean(["latitude", "longitude"]).mean()
    np.testing.assert_allclose(rows[("temperature", "500", "6", "crps", "toyens")], mae, rtol=1e-6)


def test_fingerprint_includes_the_metric_set(files):
    forecast, truth = files["folder"] / "ensemble.nc", [files["folder"] / "truth.nc"]
    fingerprint = lambda metrics: partial_scores.fingerprint(
        forecast, truth, None, "temperature", "toyens", metrics
    )
    assert fingerprint(["rmse", "acc", "bias"]) == fingerprint(["rmse", "acc", "bias"])
    assert fingerprint(["rmse", "acc", "bias"]) != fingerprint(["rmse", "acc", "bias", "crps"])
    assert fingerprint(["rmse", "acc", "bias"]) == partial_scores.fingerprint(
        forecast, truth, None, "temperature", "toyens"
    )


def test_resumed_evaluation_with_other_metrics_does_not_reuse_scores(files, tmp_path):
    folder = files["folder"]
    inputs = dict(
        forecast_path=folder / "ensemble.nc",
        truth_paths=[folder / "truth.nc"],
        climatology_path=folder / "climatology.nc",
        show_progress=False,
    )
    first = evaluate_forecast(out_dir=tmp_path, metrics=["rmse"], **inputs)
    # Leave the saved per-init parts behind, as an interrupted run would.
    for variable in ("temperature", "surface_pressure"):
        fingerprint = partial_scores.fingerprint(
            folder / "ensemble.nc",
            [folder / "truth.nc"],
            folder / "climatology.nc",
            variable,
            "toyens",
            ["rmse"],
        )
        partial = xr.Dataset({"mse": xr.DataArray([1.0], dims="time")})
        partial_scores.save(partial, tmp_path, variable, fingerprint)
    resumed = evaluate_forecast(out_dir=tmp_path, metrics=["rmse", "crps"], **inputs)
    assert {row.metric for row in first.rows} == {"rmse"}
    assert {row.metric for row in resumed.rows} == {"rmse", "crps"}
    first_rmse = {(r.variable, r.level, r.lead_hours, r.forecast): r.value for r in first.rows}
    for row in resumed.rows:
        if row.metric == "rmse":
            assert row.value == first_rmse[(row.variable, row.level, row.lead_hours, row.forecast)]


def test_block_memory_counts_the_members(files):
    forecast = open_forecast(files["folder"] / "ensemble.nc")["temperature"]
    one_member = forecast.isel({REALIZATION_DIM: 0}, drop=True)
    assert bytes_per_field(forecast) == MEMBERS * bytes_per_field(one_member)
    assert bytes_per_field(one_member) == 8 * len(LEVELS) * LATITUDE.size * LONGITUDE.size


def test_api_scores_an_ensemble_dataset(files, ensemble_rows):
    folder = files["folder"]
    with xr.open_dataset(folder / "truth.nc") as truth:
        scores = stmodel.evaluate(
            files["forecast_data"], truth, folder / "climatology.nc", variables=["temperature"]
        )
    temperature = scores["temperature"]
    assert list(temperature["metric"].values) == ["rmse", "acc", "bias", *PROBABILISTIC_SCALARS]
    crps = temperature.sel(metric="crps", forecast="toyens", level=850)
    expected = ensemble_rows[("temperature", "850", "12", "crps", "toyens")]
    np.testing.assert_allclose(crps.isel(prediction_timedelta=1), expected, rtol=1e-6)


def test_unknown_metric_names_the_known_ones(files, tmp_path):
    with pytest.raises(stmodel.errors.UserError, match="unknown metrics"):
        evaluate_forecast(
            files["folder"] / "ensemble.nc",
            [files["folder"] / "truth.nc"],
            tmp_path,
            metrics=["crsp"],
            show_progress=False,
        )
    assert "crps" in metric_registry.REGISTRY


def test_api_returns_the_rank_histograms_the_command_writes(files, ensemble_rows):
    folder = files["folder"]
    with xr.open_dataset(folder / "truth.nc") as truth:
        scores, histograms = stmodel.evaluate(
            files["forecast_data"], truth, folder / "climatology.nc", rank_histograms=True
        )
        table, again = stmodel.evaluate(
            files["forecast_data"],
            truth,
            folder / "climatology.nc",
            variables=["surface_pressure"],
            as_dataframe=True,
            rank_histograms=True,
        )
        _, none = stmodel.evaluate(
            files["forecast_data"].mean(REALIZATION_DIM, keep_attrs=True),
            truth,
            folder / "climatology.nc",
            rank_histograms=True,
        )
    assert "temperature" in scores and not table.empty
    with xr.open_dataset(folder / "scored" / RANK_HISTOGRAM_FILE) as written:
        xr.testing.assert_allclose(histograms, written.load(), rtol=1e-12)
        assert histograms.attrs == written.attrs
        xr.testing.assert_allclose(again["surface_pressure"], written["surface_pressure"])
    assert list(again.data_vars) == ["surface_pressure"]
    assert not none.data_vars and none.attrs["model_name"] == "toyens"
