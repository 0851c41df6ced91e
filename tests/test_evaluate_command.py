"""`stmodel evaluate` end to end on tiny synthetic files."""

from __future__ import annotations

import argparse
import csv
import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from stmodel.commands import evaluate as evaluate_command
from stmodel.errors import DataError, UserError
from stmodel.evaluation import evaluate as evaluation_module
from stmodel.evaluation import partial_scores
from stmodel.evaluation.area_weights import area_weights

LATITUDE = -78.75 + 22.5 * np.arange(8)  # a global 8 x 16 grid, no poles
LONGITUDE = 22.5 * np.arange(16)
LEVELS = [500, 850]
TRUTH_TIMES = pd.date_range("2020-01-01", "2020-01-12T18", freq="6h")
INITS = pd.date_range("2020-01-06", periods=4, freq="24h")
LEADS = pd.to_timedelta([6, 12, 24, 48], unit="h")
EXPECTED_COLUMNS = ["variable", "level", "lead_hours", "metric", "forecast", "value"]


def _truth() -> xr.Dataset:
    """Plausible canonical truth: travelling waves plus a daily cycle, float32."""
    hours = ((TRUTH_TIMES - TRUTH_TIMES[0]) / pd.Timedelta(1, "h")).to_numpy()
    phase = (
        np.deg2rad(LONGITUDE)[None, None, :] * 2
        - hours[:, None, None] * 2 * np.pi / 96
        + np.deg2rad(LATITUDE)[None, :, None]
    )  # [time, lat, lon]
    daily = np.sin(2 * np.pi * hours / 24)[:, None, None]  # [time, 1, 1]
    coslat = np.cos(np.deg2rad(LATITUDE))[None, :, None]
    level_offset = {"geopotential": [5.5e4, 1.4e4], "temperature": [250.0, 275.0]}
    level_amplitude = {"geopotential": [900.0, 400.0], "temperature": [4.0, 6.0]}
    data = {}
    for name in ("geopotential", "temperature"):
        pattern = np.sin(phase) * coslat + 0.1 * daily  # [time, lat, lon]
        stacked = [
            level_offset[name][k] + level_amplitude[name][k] * pattern for k in range(len(LEVELS))
        ]
        data[name] = (("time", "level", "lat", "lon"), np.stack(stacked, axis=1).astype(np.float32))
    data["surface_pressure"] = (
        ("time", "lat", "lon"),
        (1.0e5 + 800.0 * np.cos(phase) + 50 * daily).astype(np.float32),
    )
    truth = xr.Dataset(
        data,
        coords={"time": TRUTH_TIMES.values, "level": LEVELS, "lat": LATITUDE, "lon": LONGITUDE},
    )
    for name, units in (
        ("geopotential", "m2 s-2"),
        ("temperature", "K"),
        ("surface_pressure", "Pa"),
    ):
        truth[name].attrs["units"] = units
    truth["level"].attrs["units"] = "hPa"
    return truth


def _forecast_from(truth: xr.Dataset, noise: float, seed: int = 0) -> xr.Dataset:
    """Truth at the valid times plus noise growing with lead, in the WB2 forecast layout."""
    rng = np.random.default_rng(seed)
    valid = xr.DataArray(INITS.values, dims="time", coords={"time": INITS.values}) + xr.DataArray(
        LEADS.values, dims="prediction_timedelta", coords={"prediction_timedelta": LEADS.values}
    )
    forecast = truth.sel(time=valid).rename(lat="latitude", lon="longitude")
    forecast = forecast.drop_vars("time").assign_coords(time=INITS.values)
    growth = xr.DataArray(np.arange(1, LEADS.size + 1) / LEADS.size, dims="prediction_timedelta")
    for name in forecast.data_vars:
        scale = noise * truth[name].std(["time", "lat", "lon"])  # per level
        noise_field = forecast[name].copy(data=rng.normal(size=forecast[name].shape))
        forecast[name] = (forecast[name] + scale * growth * noise_field).astype(np.float32)
    forecast = forecast.transpose("time", "prediction_timedelta", "level", "latitude", "longitude")
    forecast.attrs["model_name"] = "toymodel"
    return forecast


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("evaluate")
    truth = _truth()
    truth_path = folder / "truth.nc"
    truth.to_netcdf(truth_path)
    forecast = _forecast_from(truth, noise=0.3)
    forecast_path = folder / "forecast.nc"
    forecast.to_netcdf(forecast_path)
    climatology = truth.sel(time=truth["time"] < INITS[0]).groupby("time.hour").mean("time")
    climatology.attrs["climatology_kind"] = "hour"
    climatology_path = folder / "climatology.nc"
    climatology.to_netcdf(climatology_path)
    return {
        "truth": truth_path,
        "forecast": forecast_path,
        "climatology": climatology_path,
        "folder": folder,
        "truth_data": truth,
        "forecast_data": forecast,
        "climatology_data": climatology,
    }


def _run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="stmodel")
    evaluate_command.register(parser.add_subparsers(required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def _read_rows(path):
    with open(path, newline="") as stream:
        return list(csv.DictReader(stream))


def _value(rows, variable, level, lead_hours, metric, forecast):
    key = (variable, level, lead_hours, metric, forecast)
    matches = [row for row in rows if tuple(row[column] for column in EXPECTED_COLUMNS[:-1]) == key]
    assert len(matches) == 1, (variable, level, lead_hours, metric, forecast)
    return float(matches[0]["value"])


@pytest.fixture(scope="module")
def scored(files):
    out = files["folder"] / "scored"
    code = _run_cli(
        [
            "evaluate",
            "--forecast",
            str(files["forecast"]),
            "--truth",
            str(files["truth"]),
            "--climatology",
            str(files["climatology"]),
            "--out",
            str(out),
        ]
    )
    assert code == 0
    return out


def test_writes_long_scorecard_json_and_plots(scored, capsys):
    with open(scored / "scorecard.csv", newline="") as stream:
        header = next(csv.reader(stream))
    assert header == EXPECTED_COLUMNS
    rows = _read_rows(scored / "scorecard.csv")
    fields = 2 * len(LEVELS) + 1
    assert len(rows) == fields * LEADS.size * 3 * 3
    assert {row["forecast"] for row in rows} == {"toymodel", "persistence", "climatology"}
    assert {row["metric"] for row in rows} == {"rmse", "acc", "bias"}
    assert {row["lead_hours"] for row in rows} == {"6", "12", "24", "48"}
    assert all(row["level"] == "" for row in rows if row["variable"] == "surface_pressure")
    assert {row["level"] for row in rows if row["variable"] == "temperature"} == {"500", "850"}
    records = json.loads((scored / "scorecard.json").read_text())
    assert len(records) == len(rows)
    assert list(records[0]) == EXPECTED_COLUMNS
    for name in (
        "skill_geopotential_500.png",
        "skill_temperature_850.png",
        "skill_surface_pressure.png",
    ):
        assert (scored / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (scored / partial_scores.DIRECTORY_NAME).exists()


def test_scores_match_hand_computation(files, scored):
    rows = _read_rows(scored / "scorecard.csv")
    truth, forecast = files["truth_data"], files["forecast_data"]
    lead = LEADS[2]
    model = forecast["geopotential"].sel(level=500, prediction_timedelta=lead).values.astype(float)
    observed = truth["geopotential"].sel(level=500, time=INITS + lead).values.astype(float)
    initial = truth["geopotential"].sel(level=500, time=INITS).values.astype(float)
    w = area_weights(xr.DataArray(LATITUDE, dims="latitude", coords={"latitude": LATITUDE})).values[
        None, :, None
    ]  # [1, lat, 1]
    expected_model = np.sqrt((w * (model - observed) ** 2).mean(axis=(1, 2)).mean())
    expected_persistence = np.sqrt((w * (initial - observed) ** 2).mean(axis=(1, 2)).mean())
    climatology = (
        files["climatology_data"]["geopotential"]
        .sel(level=500)
        .sel(hour=(INITS + lead).hour)
        .values.astype(float)
    )
    f_anomaly, o_anomaly = model - climatology, observed - climatology
    expected_acc = (
        (w * f_anomaly * o_anomaly).sum(axis=(1, 2))
        / np.sqrt((w * f_anomaly**2).sum(axis=(1, 2)) * (w * o_anomaly**2).sum(axis=(1, 2)))
    ).mean()
    np.testing.assert_allclose(
        _value(rows, "geopotential", "500", "24", "rmse", "toymodel"), expected_model, rtol=1e-5
    )
    np.testing.assert_allclose(
        _value(rows, "geopotential", "500", "24", "rmse", "persistence"),
        expected_persistence,
        rtol=1e-5,
    )
    np.testing.assert_allclose(
        _value(rows, "geopotential", "500", "24", "acc", "toymodel"), expected_acc, rtol=1e-5
    )
    assert np.isnan(_value(rows, "geopotential", "500", "24", "acc", "climatology"))


def test_prints_a_readable_table(files, tmp_path, capsys):
    _run_cli(
        [
            "evaluate",
            "--forecast",
            str(files["forecast"]),
            "--truth",
            str(files["truth"]),
            "--climatology",
            str(files["climatology"]),
            "--out",
            str(tmp_path),
            "--name",
            "mine",
            "--variables",
            "geopotential",
        ]
    )
    printed = capsys.readouterr().out
    assert "model: mine" in printed
    assert "geopotential at 500 hPa (m2 s-2)" in printed
    assert "RMSE persist." in printed
    assert str(tmp_path / "scorecard.csv") in printed
    rows = _read_rows(tmp_path / "scorecard.csv")
    assert {row["variable"] for row in rows} == {"geopotential"}
    assert {row["forecast"] for row in rows} == {"mine", "persistence", "climatology"}


def test_perfect_forecast_scores_rmse_0_and_acc_1(files, tmp_path):
    perfect = _forecast_from(files["truth_data"], noise=0.0)
    path = tmp_path / "perfect.nc"
    perfect.to_netcdf(path)
    _run_cli(
        [
            "evaluate",
            "--forecast",
            str(path),
            "--truth",
            str(files["truth"]),
            "--climatology",
            str(files["climatology"]),
            "--out",
            str(tmp_path / "out"),
        ]
    )
    rows = [
        row
        for row in _read_rows(tmp_path / "out" / "scorecard.csv")
        if row["forecast"] == "toymodel"
    ]
    rmse = [float(row["value"]) for row in rows if row["metric"] == "rmse"]
    acc = [float(row["value"]) for row in rows if row["metric"] == "acc"]
    np.testing.assert_allclose(rmse, 0.0, atol=1e-6)
    np.testing.assert_allclose(acc, 1.0, rtol=1e-6)


def test_other_tools_layout_scores_the_same(files, scored, tmp_path):
    """Descending latitude, longitude in [-180, 180), lat/lon names, other dim order."""
    other = files["forecast_data"].rename(latitude="lat", longitude="lon")
    other = other.assign_coords(lon=((other["lon"] + 180) % 360) - 180).sortby("lon")
    other = other.sortby("lat", ascending=False)
    other = other.transpose("lat", "lon", "level", "prediction_timedelta", "time")
    assert other["lat"].values[0] > other["lat"].values[-1] and other["lon"].values.min() < 0
    path = tmp_path / "other_tool.nc"
    other.to_netcdf(path)
    _run_cli(
        [
            "evaluate",
            "--forecast",
            str(path),
            "--truth",
            str(files["truth"]),
            "--climatology",
            str(files["climatology"]),
            "--out",
            str(tmp_path / "out"),
        ]
    )
    reference = _read_rows(scored / "scorecard.csv")
    again = _read_rows(tmp_path / "out" / "scorecard.csv")
    assert [list(row.values())[:-1] for row in again] == [
        list(row.values())[:-1] for row in reference
    ]
    np.testing.assert_allclose(
        [float(row["value"]) for row in again],
        [float(row["value"]) for row in reference],
        rtol=1e-6,
        equal_nan=True,
    )


def test_missing_valid_times_name_file_and_times(files, tmp_path):
    short_truth = files["truth_data"].sel(time=slice(None, "2020-01-09T00"))
    path = tmp_path / "short_truth.nc"
    short_truth.to_netcdf(path)
    with pytest.raises(
        DataError,
        match=r"short_truth\.nc: the truth lacks 4 of the forecast's valid times: "
        r"2020-01-09 06:00:00, 2020-01-09 12:00:00, 2020-01-10 00:00:00, "
        r"2020-01-11 00:00:00; the truth covers 2020-01-01 00:00:00 to 2020-01-09",
    ):
        _run_cli(
            [
                "evaluate",
                "--forecast",
                str(files["forecast"]),
                "--truth",
                str(path),
                "--climatology",
                str(files["climatology"]),
                "--out",
                str(tmp_path / "out"),
            ]
        )


def test_without_climatology_uses_earlier_truth(files, tmp_path, capsys):
    _run_cli(
        [
            "evaluate",
            "--forecast",
            str(files["forecast"]),
            "--truth",
            str(files["truth"]),
            "--out",
            str(tmp_path),
        ]
    )
    assert (
        "note: climatology: mean per hour of day of the truth before 2020-01-06"
        in capsys.readouterr().out
    )
    # The climatology file of the fixture is exactly that climatology.
    np.testing.assert_allclose(
        [float(row["value"]) for row in _read_rows(tmp_path / "scorecard.csv")],
        [float(row["value"]) for row in _read_rows(files["folder"] / "scored" / "scorecard.csv")],
        rtol=1e-5,
        equal_nan=True,
    )


def test_without_climatology_or_earlier_truth_asks_for_one(files, tmp_path):
    later_truth = files["truth_data"].sel(time=slice("2020-01-06", None))
    path = tmp_path / "later_truth.nc"
    later_truth.to_netcdf(path)
    with pytest.raises(
        UserError, match=r"later_truth\.nc.*ACC and the climatology baseline.*--climatology"
    ):
        _run_cli(
            [
                "evaluate",
                "--forecast",
                str(files["forecast"]),
                "--truth",
                str(path),
                "--out",
                str(tmp_path / "out"),
            ]
        )


def test_unknown_variable_is_a_user_error(files, tmp_path):
    with pytest.raises(UserError, match=r"forecast\.nc.*\['vorticity'\]"):
        _run_cli(
            [
                "evaluate",
                "--forecast",
                str(files["forecast"]),
                "--truth",
                str(files["truth"]),
                "--climatology",
                str(files["climatology"]),
                "--out",
                str(tmp_path),
                "--variables",
                "vorticity",
            ]
        )


def test_interrupted_evaluation_resumes(files, tmp_path, monkeypatch):
    scored_variables = []
    original = evaluation_module._score_one

    def interrupt_on_temperature(forecast, *args, **kwargs):
        if forecast.name == "temperature" and "temperature" not in scored_variables:
            scored_variables.append("temperature")
            raise KeyboardInterrupt
        scored_variables.append(forecast.name)
        return original(forecast, *args, **kwargs)

    monkeypatch.setattr(evaluation_module, "_score_one", interrupt_on_temperature)
    argv = [
        "evaluate",
        "--forecast",
        str(files["forecast"]),
        "--truth",
        str(files["truth"]),
        "--climatology",
        str(files["climatology"]),
        "--out",
        str(tmp_path),
    ]
    with pytest.raises(KeyboardInterrupt):
        _run_cli(argv)
    assert (tmp_path / partial_scores.DIRECTORY_NAME / "geopotential.nc").exists()
    assert not (tmp_path / "scorecard.csv").exists()
    _run_cli(argv)
    # geopotential came from disk; temperature (interrupted) and surface pressure were scored.
    assert scored_variables == ["geopotential", "temperature", "temperature", "surface_pressure"]
    np.testing.assert_allclose(
        [float(row["value"]) for row in _read_rows(tmp_path / "scorecard.csv")],
        [float(row["value"]) for row in _read_rows(files["folder"] / "scored" / "scorecard.csv")],
        rtol=1e-6,
        equal_nan=True,
    )
