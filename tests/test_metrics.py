"""Skill metrics, area weights, baselines and the scorecard against hand-computed numpy."""

from __future__ import annotations

import csv
import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from stmodel.errors import DataError, UserError
from stmodel.evaluation import metrics, scorecard
from stmodel.evaluation.area_weights import area_weights, latitude_cell_edges
from stmodel.evaluation.baselines import climatology_forecast, persistence_forecast
from stmodel.evaluation.climatology import climatology_at, hour_of_day_climatology, open_climatology
from stmodel.evaluation.forecast_layout import to_forecast_grid
from stmodel.evaluation.scoring import aggregate, plan_blocks, score_variable
from stmodel.evaluation.truth_alignment import on_forecast_grid, select_times

# --- area weights -----------------------------------------------------------------------


def _hand_weights(edges_degrees):
    edges = np.deg2rad(np.asarray(edges_degrees, dtype=np.float64))
    weights = np.sin(edges[1:]) - np.sin(edges[:-1])
    return weights / weights.mean()


def test_area_weights_global_5p625_grid_match_cell_areas():
    latitude = -87.1875 + 5.625 * np.arange(32)
    expected = _hand_weights(np.concatenate([[-90], np.arange(-84.375, 84.38, 5.625), [90]]))
    weights = area_weights(xr.DataArray(latitude, dims="latitude", coords={"latitude": latitude}))
    np.testing.assert_allclose(weights.values, expected, rtol=1e-12)
    assert weights.dims == ("latitude",)
    np.testing.assert_allclose(weights.mean(), 1.0)
    # Equal cells reaching the poles: sin(a + h) - sin(a - h) = 2 sin(h) cos(a), so cos(latitude).
    cosine = np.cos(np.deg2rad(latitude))
    np.testing.assert_allclose(weights.values, cosine / cosine.mean(), rtol=1e-12)


def test_area_weights_with_pole_rows_give_half_cells_at_the_poles():
    latitude = np.array([-90.0, -45.0, 0.0, 45.0, 90.0])
    weights = area_weights(xr.DataArray(latitude, dims="latitude", coords={"latitude": latitude}))
    expected = _hand_weights([-90, -67.5, -22.5, 22.5, 67.5, 90])
    np.testing.assert_allclose(weights.values, expected, rtol=1e-12)
    # Not cos(latitude), which would give the pole rows no weight at all.
    assert weights.values[0] > 0.05


@pytest.mark.parametrize(
    "latitude, edges",
    [
        # Rows on the poles: half cells there (WeatherBench 2's +/-90 edges).
        ([-90, -45, 0, 45, 90], [-90, -67.5, -22.5, 22.5, 67.5, 90]),
        # Uneven (Gaussian-like) global rows: outer edges at the poles.
        ([-80, -30, 20, 70], [-90, -55, -5, 45, 90]),
        # Regional grid: half a spacing beyond the outer rows.
        ([50.0, 50.25, 50.5, 51.0], [49.875, 50.125, 50.375, 50.75, 51.25]),
    ],
)
def test_latitude_cell_edges(latitude, edges):
    np.testing.assert_allclose(latitude_cell_edges(np.array(latitude, dtype=float)), edges)


def test_area_weights_regional_grid():
    latitude = np.arange(50.0, 58.01, 0.25)
    expected = _hand_weights(np.concatenate([[49.875], latitude[:-1] + 0.125, [58.125]]))
    weights = area_weights(xr.DataArray(latitude, dims="latitude", coords={"latitude": latitude}))
    np.testing.assert_allclose(weights.values, expected, rtol=1e-12)


def test_latitude_cell_edges_reject_descending():
    with pytest.raises(ValueError, match="ascending"):
        latitude_cell_edges(np.array([10.0, 0.0]))


# --- metrics ----------------------------------------------------------------------------

LATITUDE = np.array([-60.0, -20.0, 20.0, 60.0])
LONGITUDE = np.array([0.0, 90.0, 180.0, 270.0, 300.0])
LEADS = pd.to_timedelta([6, 12], unit="h").values
INITS = pd.date_range("2020-01-01", periods=3, freq="12h").values


def _field(values):
    """[time, prediction_timedelta, latitude, longitude] DataArray."""
    return xr.DataArray(
        values,
        dims=("time", "prediction_timedelta", "latitude", "longitude"),
        coords={
            "time": INITS,
            "prediction_timedelta": LEADS,
            "latitude": LATITUDE,
            "longitude": LONGITUDE,
        },
    )


@pytest.fixture(scope="module")
def toy_fields():
    rng = np.random.default_rng(0)
    shape = (3, 2, 4, 5)
    truth = 10 + rng.normal(size=shape)
    forecast = truth + rng.normal(scale=0.5, size=shape) + 0.2
    climatology = 10 + rng.normal(scale=0.3, size=shape)
    weights = area_weights(xr.DataArray(LATITUDE, dims="latitude", coords={"latitude": LATITUDE}))
    hand_weights = _hand_weights([-90, -40, 0, 40, 90])[None, None, :, None]  # [1, 1, lat, 1]
    return truth, forecast, climatology, weights, hand_weights


def test_rmse_takes_square_root_after_time_mean(toy_fields):
    truth, forecast, _, weights, w = toy_fields
    mse_per_init = (w * (forecast - truth) ** 2).mean(axis=(2, 3))  # [time, lead]
    expected = np.sqrt(mse_per_init.mean(axis=0))  # [lead]
    result = metrics.rmse(_field(forecast), _field(truth), weights)
    xr.testing.assert_allclose(
        result,
        xr.DataArray(expected, dims="prediction_timedelta", coords={"prediction_timedelta": LEADS}),
    )
    # The order matters: the mean of per-init RMSEs is a different number.
    assert not np.allclose(result.values, np.sqrt(mse_per_init).mean(axis=0))


def test_acc_matches_hand_computation(toy_fields):
    truth, forecast, climatology, weights, w = toy_fields
    f_anomaly, o_anomaly = forecast - climatology, truth - climatology
    spatial = (2, 3)
    per_init = (w * f_anomaly * o_anomaly).sum(axis=spatial) / np.sqrt(
        (w * f_anomaly**2).sum(axis=spatial) * (w * o_anomaly**2).sum(axis=spatial)
    )  # [time, lead]
    result = metrics.acc(_field(forecast), _field(truth), _field(climatology), weights)
    xr.testing.assert_allclose(
        result,
        xr.DataArray(
            per_init.mean(axis=0),
            dims="prediction_timedelta",
            coords={"prediction_timedelta": LEADS},
        ),
    )


def test_bias_matches_hand_computation(toy_fields):
    truth, forecast, _, weights, w = toy_fields
    expected = (w * (forecast - truth)).mean(axis=(2, 3)).mean(axis=0)
    result = metrics.bias(_field(forecast), _field(truth), weights)
    xr.testing.assert_allclose(
        result,
        xr.DataArray(expected, dims="prediction_timedelta", coords={"prediction_timedelta": LEADS}),
    )


def test_perfect_forecast_scores_rmse_0_acc_1_bias_0(toy_fields):
    truth, _, climatology, weights, _ = toy_fields
    np.testing.assert_allclose(metrics.rmse(_field(truth), _field(truth), weights), 0.0)
    np.testing.assert_allclose(
        metrics.acc(_field(truth), _field(truth), _field(climatology), weights), 1.0
    )
    np.testing.assert_allclose(metrics.bias(_field(truth), _field(truth), weights), 0.0)


def test_metrics_work_on_datasets(toy_fields):
    truth, forecast, _, weights, _ = toy_fields
    result = metrics.rmse(
        xr.Dataset({"a": _field(forecast)}), xr.Dataset({"a": _field(truth)}), weights
    )
    xr.testing.assert_allclose(result["a"], metrics.rmse(_field(forecast), _field(truth), weights))


def test_acc_of_zero_anomaly_is_undefined(toy_fields):
    truth, _, climatology, weights, _ = toy_fields
    result = metrics.acc(_field(climatology), _field(truth), _field(climatology), weights)
    assert np.isnan(result.values).all()


# --- baselines on a toy series ----------------------------------------------------------


def _valid_times(inits, leads):
    """[time, prediction_timedelta] valid times."""
    return xr.DataArray(inits, dims="time", coords={"time": inits}) + xr.DataArray(
        leads, dims="prediction_timedelta", coords={"prediction_timedelta": leads}
    )


SERIES_TIMES = pd.date_range("2021-03-01", periods=16, freq="6h").values


def _toy_series():
    """Truth x(t) = 280 + 0.5 K per 6 h + a pattern fixed in space: [time, latitude, longitude]."""
    steps = np.arange(SERIES_TIMES.size, dtype=np.float64)
    pattern = np.linspace(-1, 1, LATITUDE.size)[:, None] + np.zeros(LONGITUDE.size)  # [lat, lon]
    values = 280 + 0.5 * steps[:, None, None] + pattern[None]
    return xr.DataArray(
        values,
        dims=("time", "latitude", "longitude"),
        coords={"time": SERIES_TIMES, "latitude": LATITUDE, "longitude": LONGITUDE},
        name="temperature",
    )


def test_persistence_error_grows_with_the_trend():
    truth = _toy_series()
    inits = xr.DataArray(SERIES_TIMES[:4], dims="time", coords={"time": SERIES_TIMES[:4]})
    lead_values = pd.to_timedelta([0, 6, 24], unit="h").values
    leads = xr.DataArray(
        lead_values, dims="prediction_timedelta", coords={"prediction_timedelta": lead_values}
    )
    persistence = persistence_forecast(select_times(truth, inits), leads)
    assert persistence.dims == ("time", "prediction_timedelta", "latitude", "longitude")
    valid = inits + leads
    weights = area_weights(truth["latitude"])
    rmse = metrics.rmse(persistence, select_times(truth, valid), weights)
    # A 0.5 K per 6 h trend: persistence is off by 0, 0.5 and 2 K everywhere.
    np.testing.assert_allclose(rmse.values, [0.0, 0.5, 2.0], atol=1e-12)
    bias = metrics.bias(persistence, select_times(truth, valid), weights)
    np.testing.assert_allclose(bias.values, [0.0, -0.5, -2.0], atol=1e-12)


def test_climatology_baseline_picks_day_of_year_and_hour():
    days = np.arange(1, 367)
    hours = np.array([0, 6, 12, 18])
    # Each entry encodes where it came from: 100 * dayofyear + hour.
    values = (100.0 * days[:, None] + hours[None, :])[:, :, None, None] + np.zeros((4, 5))
    climatology = xr.DataArray(
        values,
        dims=("dayofyear", "hour", "latitude", "longitude"),
        coords={"dayofyear": days, "hour": hours, "latitude": LATITUDE, "longitude": LONGITUDE},
        name="temperature",
    )
    inits = pd.to_datetime(["2021-03-01T00", "2021-12-31T18"]).values
    leads = pd.to_timedelta([6, 30], unit="h").values
    valid = _valid_times(inits, leads)
    result = climatology_forecast(climatology, valid, "toy climatology")
    assert result.dims == ("time", "prediction_timedelta", "latitude", "longitude")
    # 2021-03-01 06 h: day 60; 2021-03-02 06 h: day 61; 2022-01-01 00 h: day 1; 01-02 00 h: day 2.
    np.testing.assert_array_equal(
        result.isel(latitude=0, longitude=0).values, [[6006.0, 6106.0], [100.0, 200.0]]
    )
    np.testing.assert_array_equal(result["time"].values, inits)


def test_climatology_baseline_rmse_is_the_anomaly():
    hours = np.array([0, 6, 12, 18])
    climatology = xr.DataArray(
        (250.0 + hours)[:, None, None] + np.zeros((4, 5)),
        dims=("hour", "latitude", "longitude"),
        coords={"hour": hours, "latitude": LATITUDE, "longitude": LONGITUDE},
    )
    inits = SERIES_TIMES[:3]
    leads = pd.to_timedelta([6, 12], unit="h").values
    valid = _valid_times(inits, leads)
    hour_of_valid = valid.dt.hour.values[..., None, None]  # [time, lead, 1, 1]
    truth = _field(250.0 + hour_of_valid + 3.0 + np.zeros((3, 2, 4, 5))).assign_coords(
        time=inits
    )  # always 3 K warmer than its climatology
    forecast = climatology_forecast(climatology, valid, "toy climatology")
    weights = area_weights(truth["latitude"])
    np.testing.assert_allclose(metrics.rmse(forecast, truth, weights).values, [3.0, 3.0])
    assert np.isnan(metrics.acc(forecast, truth, forecast, weights).values).all()


def test_climatology_at_time_mean_broadcasts():
    climatology = xr.DataArray(
        np.full((4, 5), 7.0),
        dims=("latitude", "longitude"),
        coords={"latitude": LATITUDE, "longitude": LONGITUDE},
    )
    valid = xr.DataArray(SERIES_TIMES[:6].reshape(3, 2), dims=("time", "prediction_timedelta"))
    result = climatology_at(climatology, valid, "toy")
    assert result.shape == (3, 2, 4, 5)
    assert (result.values == 7.0).all()


def test_climatology_at_missing_hour_names_the_times():
    climatology = xr.DataArray(
        np.zeros((2, 4, 5)),
        dims=("hour", "latitude", "longitude"),
        coords={"hour": [0, 12]},
        name="temperature",
    )
    valid = xr.DataArray(SERIES_TIMES[:2], dims="time")
    with pytest.raises(DataError, match=r"toy clim.*'temperature'.*hour.*2021-03-01 06:00"):
        climatology_at(climatology, valid, "toy clim")


def test_hour_of_day_climatology_from_earlier_truth():
    truth = _toy_series().to_dataset()
    climatology = hour_of_day_climatology(truth, SERIES_TIMES[8], "toy truth")
    assert climatology.attrs["climatology_kind"] == "hour"
    # Times 0..7 (two days): hour 0 at steps 0 and 4, mean 280 + 0.5 * 2 + pattern.
    np.testing.assert_allclose(
        climatology["temperature"].sel(hour=0).isel(latitude=0).values, 280 + 1.0 - 1.0
    )
    np.testing.assert_allclose(
        climatology["temperature"].sel(hour=18).isel(latitude=-1).values, 280 + 0.5 * 5 + 1.0
    )
    with pytest.raises(UserError, match="--climatology"):
        hour_of_day_climatology(truth, SERIES_TIMES[0], "toy truth")


# --- blocks -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "n_init, n_lead, field_bytes, budget",
    [(20, 20, 100, 10**9), (20, 20, 100, 450), (20, 20, 100, 2500), (7, 3, 100, 1), (1, 1, 5, 5)],
)
def test_plan_blocks_cover_every_pair_once_within_budget(n_init, n_lead, field_bytes, budget):
    blocks = plan_blocks(n_init, n_lead, field_bytes, budget)
    covered = np.zeros((n_init, n_lead), dtype=int)
    for block in blocks:
        covered[block.init, block.lead] += 1
        fields = (block.init.stop - block.init.start) * (block.lead.stop - block.lead.start)
        assert fields * field_bytes <= max(budget, field_bytes)
    assert (covered == 1).all()


def test_scoring_in_small_blocks_equals_one_block():
    truth = _toy_series()
    rng = np.random.default_rng(1)
    inits, leads = SERIES_TIMES[:5], pd.to_timedelta([6, 12, 18], unit="h").values
    valid = _valid_times(inits, leads)
    forecast = select_times(truth, valid) + rng.normal(size=(5, 3, 4, 5))
    climatology = truth.isel(time=slice(0, 4)).groupby("time.hour").mean("time")
    weights = area_weights(truth["latitude"])
    whole = score_variable(forecast, truth, climatology, weights, "toy", "toy clim")
    pieces = score_variable(
        forecast, truth, climatology, weights, "toy", "toy clim", block_bytes=2 * 8 * 4 * 5
    )
    xr.testing.assert_allclose(whole, pieces)
    assert whole["forecast"].values.tolist() == ["toy", "persistence", "climatology"]
    scores = aggregate(whole)
    xr.testing.assert_allclose(
        scores["rmse"].sel(forecast="toy", drop=True),
        metrics.rmse(forecast, select_times(truth, valid), weights),
    )
    # Persistence of a 0.5 K per 6 h trend.
    np.testing.assert_allclose(scores["rmse"].sel(forecast="persistence").values, [0.5, 1.0, 1.5])


# --- forecast layout --------------------------------------------------------------------


def test_to_forecast_grid_sorts_latitude_and_wraps_longitude():
    latitude = np.array([45.0, 0.0, -45.0])
    longitude = np.array([-180.0, -90.0, 0.0, 90.0])
    values = np.arange(12.0).reshape(3, 4)
    dataset = xr.Dataset(
        {"x": (("lat", "lon"), values)}, coords={"lat": latitude, "lon": longitude}
    )
    result = to_forecast_grid(dataset, "toy")
    np.testing.assert_array_equal(result["latitude"].values, [-45.0, 0.0, 45.0])
    np.testing.assert_array_equal(result["longitude"].values, [0.0, 90.0, 180.0, 270.0])
    # The point at (45 N, -90 E) is (45 N, 270 E) now.
    assert float(result["x"].sel(latitude=45.0, longitude=270.0)) == values[0, 1]


def test_to_forecast_grid_rejects_duplicate_longitudes():
    dataset = xr.Dataset(
        {"x": (("lat", "lon"), np.zeros((1, 2)))}, coords={"lat": [0.0], "lon": [-180.0, 180.0]}
    )
    with pytest.raises(DataError, match="repeated"):
        to_forecast_grid(dataset, "toy")


# --- scorecard --------------------------------------------------------------------------


def _toy_scores(with_level: bool) -> xr.Dataset:
    leads = pd.to_timedelta([6, 24], unit="h").values
    forecasts = ["mymodel", "persistence", "climatology"]
    dims = ("forecast", "prediction_timedelta") + (("level",) if with_level else ())
    shape = (3, 2) + ((2,) if with_level else ())
    coords = {"forecast": forecasts, "prediction_timedelta": leads}
    if with_level:
        coords["level"] = [500, 850]
    values = np.arange(np.prod(shape), dtype=float).reshape(shape)
    acc = values / 100
    acc[2] = np.nan
    return xr.Dataset(
        {"rmse": (dims, values), "acc": (dims, acc), "bias": (dims, -values)}, coords=coords
    )


def _comparable(rows):
    """Rows as tuples with NaN as None (NaN != NaN would fail any comparison)."""
    return [
        (*dataclasses.astuple(row)[:-1], None if math.isnan(row.value) else row.value)
        for row in rows
    ]


def test_scorecard_rows_csv_and_json(tmp_path):
    rows = scorecard.rows_from_scores(
        "geopotential", _toy_scores(True)
    ) + scorecard.rows_from_scores("surface_pressure", _toy_scores(False))
    assert len(rows) == (2 + 1) * 2 * 3 * 3
    csv_path = scorecard.write_csv(rows, tmp_path / "scorecard.csv")
    json_path = scorecard.write_json(rows, tmp_path / "scorecard.json")
    with open(csv_path, newline="") as stream:
        records = list(csv.reader(stream))
    assert records[0] == ["variable", "level", "lead_hours", "metric", "forecast", "value"]
    assert records[1] == ["geopotential", "500", "6", "rmse", "mymodel", "0.0"]
    surface = [record for record in records[1:] if record[0] == "surface_pressure"]
    assert surface and all(record[1] == "" for record in surface)
    assert _comparable(scorecard.read_csv(csv_path)) == _comparable(rows)
    loaded = json.loads(json_path.read_text())
    assert len(loaded) == len(rows)
    assert loaded[0] == {
        "variable": "geopotential",
        "level": 500,
        "lead_hours": 6,
        "metric": "rmse",
        "forecast": "mymodel",
        "value": 0.0,
    }
    clim_acc = [
        record
        for record in loaded
        if record["metric"] == "acc" and record["forecast"] == "climatology"
    ]
    assert clim_acc and all(record["value"] is None for record in clim_acc)
    assert all(
        math.isnan(row.value)
        for row in scorecard.read_csv(csv_path)
        if row.metric == "acc" and row.forecast == "climatology"
    )


def test_key_fields_and_table():
    rows = scorecard.rows_from_scores(
        "geopotential", _toy_scores(True)
    ) + scorecard.rows_from_scores("surface_pressure", _toy_scores(False))
    assert scorecard.key_fields(rows) == [("geopotential", 500), ("surface_pressure", None)]
    table = scorecard.format_table(rows, "mymodel")
    assert "geopotential at 500 hPa (m2 s-2)" in table
    assert "surface_pressure (Pa)" in table
    assert "850" not in table
    # Lead 24 h of Z500: RMSE model 2, persistence 6, climatology 10.
    line = next(line for line in table.splitlines() if line.split()[:1] == ["24"])
    assert line.split()[:4] == ["24", "2", "6", "10"]


# --- truth and climatology on the forecast's grid ---------------------------------------


def test_on_forecast_grid_selects_a_regional_forecast_from_global_truth():
    truth = xr.Dataset(
        {"x": (("lat", "lon"), np.arange(20.0).reshape(4, 5))},
        coords={"lat": LATITUDE, "lon": LONGITUDE},
    )
    forecast = xr.Dataset(coords={"latitude": LATITUDE[1:3], "longitude": LONGITUDE[[1, 3]] + 1e-5})
    result = on_forecast_grid(truth, forecast, "toy truth")
    np.testing.assert_array_equal(result["x"].values, [[6.0, 8.0], [11.0, 13.0]])
    np.testing.assert_array_equal(result["longitude"].values, forecast["longitude"].values)
    elsewhere = xr.Dataset(coords={"latitude": [0.0], "longitude": [90.0]})
    with pytest.raises(DataError, match=r"toy truth: its latitude .* forecast's latitude"):
        on_forecast_grid(truth, elsewhere, "toy truth")


def test_open_climatology_checks_kind_against_dims(tmp_path):
    climatology = xr.Dataset(
        {"temperature": (("hour", "lat", "lon"), np.zeros((4, 4, 5)))},
        coords={"hour": [0, 6, 12, 18], "lat": LATITUDE, "lon": LONGITUDE},
    )
    path = tmp_path / "climatology.nc"
    climatology.assign_attrs(climatology_kind="dayofyear_hour").to_netcdf(path)
    with pytest.raises(
        DataError, match=r"climatology\.nc: climatology_kind='dayofyear_hour' needs"
    ):
        open_climatology(path)
    climatology.to_netcdf(path)  # no attribute: the kind follows from the dims
    assert open_climatology(path).attrs["climatology_kind"] == "hour"
