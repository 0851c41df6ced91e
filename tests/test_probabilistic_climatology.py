"""The probabilistic climatology baseline (past truth states as an ensemble) and a
deterministic forecast scored as a one-member ensemble, on tiny synthetic files.

Every truth state here is a constant field whose value is its time (hours since
2000-01-01), so a member's value says which state it was drawn from."""

from __future__ import annotations

import argparse
import csv
import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import stmodel
from stmodel.commands import evaluate as evaluate_command
from stmodel.errors import DataError, UserError
from stmodel.evaluation import partial_scores
from stmodel.evaluation.area_weights import area_weights
from stmodel.evaluation.evaluate import evaluate_forecast
from stmodel.evaluation.metric_base import REALIZATION_DIM
from stmodel.evaluation.probabilistic_climatology import (
    ProbabilisticClimatologyRequest,
    draw,
)
from stmodel.evaluation.scoring import (
    PROBABILISTIC_CLIMATOLOGY,
    bytes_per_field,
    score_variable,
    variable_blocks,
)

LATITUDE = np.array([-67.5, -22.5, 22.5, 67.5])
LONGITUDE = 45.0 * np.arange(8)
EPOCH = np.datetime64("2000-01-01T00", "ns")
TIMES = pd.date_range("2000-01-01", "2002-03-10", freq="6h")
TRAIN_PERIOD = "2000-01-01/2001-12-31"
INITS = pd.DatetimeIndex(["2002-03-01T00", "2002-03-02T12"])
LEADS = pd.to_timedelta([6, 12, 24], unit="h")
MEMBERS = 5
NO_SEASONS = "longitude_roll north_south_mirror"  # the built-in planet's symmetries
PROBABILISTIC = ["crps", "crps_ecdf", "ensemble_mean_rmse", "spread", "spread_skill_ratio"]


def _hours(times) -> np.ndarray:
    return (np.asarray(times, "datetime64[ns]") - EPOCH) / np.timedelta64(1, "h")


def _truth(**attrs) -> xr.Dataset:
    """surface_pressure = its own time in hours since 2000-01-01, the same at every point."""
    values = np.broadcast_to(
        _hours(TIMES)[:, None, None], (TIMES.size, LATITUDE.size, LONGITUDE.size)
    )  # [time, lat, lon]
    return xr.Dataset(
        {"surface_pressure": (("time", "lat", "lon"), values.astype(np.float64))},
        coords={"time": TIMES.values, "lat": LATITUDE, "lon": LONGITUDE},
        attrs={"train_period": TRAIN_PERIOD, **attrs},
    )


def _valid_times(inits=INITS, leads=LEADS) -> xr.DataArray:
    return xr.DataArray(
        inits.values[:, None] + leads.values[None, :],
        dims=("time", "prediction_timedelta"),
        coords={"time": inits.values, "prediction_timedelta": leads.values},
    )  # [time, prediction_timedelta]


def _draw(truth: xr.Dataset, members: int = MEMBERS, **request):
    return draw(
        truth,
        "truth.nc",
        _valid_times(),
        INITS.values.min(),
        members,
        ProbabilisticClimatologyRequest(**request),
    )


def _day_distance(a: pd.DatetimeIndex, b: pd.Timestamp) -> np.ndarray:
    apart = np.abs(a.day_of_year - b.day_of_year)
    return np.minimum(apart, 365 - apart)


def test_members_are_training_states_at_the_same_hour_and_time_of_year():
    truth = _truth()
    drawn = _draw(truth)
    assert drawn.source_times.shape == (np.unique(_valid_times().values).size, MEMBERS)
    years = set()
    for valid, sources in zip(drawn.valid_times, drawn.source_times):
        valid, sources = pd.Timestamp(valid), pd.DatetimeIndex(sources)
        assert sources.is_unique  # drawn without replacement
        assert (sources >= "2000-01-01").all() and (sources < "2002-01-01").all()
        assert (sources.hour == valid.hour).all()
        assert (_day_distance(sources, valid) <= 7).all(), (valid, sources)
        years |= set(sources.year)
    assert years == {2000, 2001}
    # The members' fields are the truth at those times: dims of the valid times + members.
    members = drawn.forecast(truth["surface_pressure"], _valid_times())
    assert members.dims == ("time", "prediction_timedelta", REALIZATION_DIM, "lat", "lon")
    assert members.dtype == np.float64
    first = members.isel(time=1, prediction_timedelta=2, lat=0, lon=0).values
    row = np.searchsorted(drawn.valid_times, (INITS[1] + LEADS[2]).to_datetime64())
    np.testing.assert_array_equal(first, _hours(drawn.source_times[row]))


def test_data_without_seasons_draw_any_day_of_the_training_period_at_the_same_hour():
    drawn = _draw(_truth(symmetries=NO_SEASONS), members=40)
    sources = pd.DatetimeIndex(drawn.source_times.ravel())
    valid = np.repeat(drawn.valid_times, 40)
    assert (sources.hour == pd.DatetimeIndex(valid).hour).all()
    assert (sources >= "2000-01-01").all() and (sources < "2002-01-01").all()
    # Far from the valid time's day of the year too (a +-7 day window would forbid it).
    assert (_day_distance(sources, pd.Timestamp(drawn.valid_times[0])) > 60).any()
    assert "no seasons" in drawn.description


def test_the_draw_is_a_function_of_the_seed_and_the_valid_time():
    truth = _truth()
    first, again, other = _draw(truth), _draw(truth), _draw(truth, seed=1)
    np.testing.assert_array_equal(first.source_times, again.source_times)
    assert not np.array_equal(first.source_times, other.source_times)
    # Drawn for one init time only: the same members at its valid times.
    one = draw(
        truth,
        "truth.nc",
        _valid_times(INITS[1:]),
        INITS.values.min(),
        MEMBERS,
        ProbabilisticClimatologyRequest(),
    )
    rows = np.searchsorted(first.valid_times, one.valid_times)
    np.testing.assert_array_equal(first.source_times[rows], one.source_times)


def test_a_training_period_without_truth_fails_naming_the_file_and_the_period():
    truth = _truth(train_period="1990-01-01/1990-12-31")
    with pytest.raises(DataError, match=r"truth\.nc: no states .* in the training period "):
        _draw(truth)
    with pytest.raises(DataError, match=r"1990-01-01/1990-12-31.*covers 2000-01-01"):
        _draw(truth)


def test_too_few_training_states_fails_naming_the_valid_time_and_count():
    # Three weeks of training data around 1 Feb: nothing within 7 days of early March.
    truth = _truth(train_period="2001-01-25/2001-02-14")
    with pytest.raises(DataError, match=r"truth\.nc: .*needs 5 members at valid time 2002-03-01"):
        _draw(truth)
    # A single year around the valid time: 15 days at 06 UTC in reach, not 16.
    truth = _truth(train_period="2001-02-01/2001-03-31")
    assert _draw(truth, members=15).members == 15
    with pytest.raises(DataError, match=r"only 15 state\(s\) at 06:00 within \+-7 days"):
        _draw(truth, members=16)


def test_without_a_train_period_the_truth_before_the_first_init_is_used():
    truth = _truth()
    del truth.attrs["train_period"]
    drawn = _draw(truth)
    assert (drawn.source_times < INITS.values.min()).all()
    assert "before the first init time 2002-03-01" in drawn.description
    with pytest.raises(DataError, match=r"no states .* in the truth before the first init"):
        draw(
            truth.sel(time=truth["time"] >= INITS.values.min()),
            "truth.nc",
            _valid_times(),
            INITS.values.min(),
            MEMBERS,
            ProbabilisticClimatologyRequest(),
        )


def test_members_default_to_the_forecasts_ensemble_size():
    ensemble = xr.Dataset(coords={REALIZATION_DIM: np.arange(MEMBERS)})
    deterministic = xr.Dataset()
    assert ProbabilisticClimatologyRequest().members_for(ensemble) == MEMBERS
    assert ProbabilisticClimatologyRequest().members_for(deterministic) == 0
    assert ProbabilisticClimatologyRequest(members=3).members_for(deterministic) == 3
    assert ProbabilisticClimatologyRequest(members=0).members_for(ensemble) == 0
    with pytest.raises(UserError, match="members: expected a count >= 0"):
        ProbabilisticClimatologyRequest(members=-1)


def test_scores_in_small_blocks_equal_one_block_and_blocks_count_its_members():
    truth = _truth()["surface_pressure"].rename(lat="latitude", lon="longitude")
    valid = _valid_times()
    forecast = truth.sel(time=valid).drop_vars("time").assign_coords(time=INITS.values)
    forecast = forecast.expand_dims({REALIZATION_DIM: 2}, axis=2) + xr.DataArray(
        [-1.0, 1.0], dims=REALIZATION_DIM
    )  # [time, lead, member, lat, lon]
    climatology = truth.isel(time=slice(0, 4)).groupby("time.hour").mean("time")
    weights = area_weights(truth["latitude"])
    drawn = _draw(_truth())
    arguments = (forecast, truth, climatology, weights, "toy", "toy clim")
    options = dict(metrics=["crps", "spread"], climatology_ensemble=drawn)
    whole = score_variable(*arguments, **options)
    pieces = score_variable(*arguments, **options, block_bytes=bytes_per_field(forecast, 5))
    assert len(variable_blocks(forecast, 5, bytes_per_field(forecast, 5))) == INITS.size * 3
    xr.testing.assert_allclose(whole, pieces)
    assert whole["forecast"].values.tolist() == [
        "toy",
        "persistence",
        "climatology",
        PROBABILISTIC_CLIMATOLOGY,
    ]
    # Blocks are planned for the larger ensemble: the 5 baseline members, not the 2.
    assert bytes_per_field(forecast, 5) == 5 * bytes_per_field(forecast, 1)
    assert variable_blocks(forecast, 5, 3 * bytes_per_field(forecast, 5))[0].lead == slice(0, 1)


# --- the command line -------------------------------------------------------------------


def _ensemble(truth: xr.Dataset) -> xr.Dataset:
    rng = np.random.default_rng(3)
    forecast = truth.sel(time=_valid_times()).rename(lat="latitude", lon="longitude")
    forecast = forecast.drop_vars("time").assign_coords(time=INITS.values)
    forecast = forecast.expand_dims({REALIZATION_DIM: np.arange(MEMBERS)})
    noise = rng.normal(size=forecast["surface_pressure"].shape)
    forecast["surface_pressure"] = forecast["surface_pressure"] + 30.0 * noise
    forecast.attrs["model_name"] = "toyens"
    return forecast


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("probabilistic_climatology")
    truth = _truth()
    truth.to_netcdf(folder / "truth.nc")
    # A climatology file: deriving one from the truth's 3,000 times would take longest.
    climatology = truth.sel(time=TRAIN_PERIOD.split("/")[0]).groupby("time.hour").mean("time")
    climatology.attrs = {"climatology_kind": "hour"}
    climatology.to_netcdf(folder / "climatology.nc")
    ensemble = _ensemble(truth)
    ensemble.to_netcdf(folder / "ensemble.nc")
    member = ensemble.isel({REALIZATION_DIM: 0}, drop=True)  # a deterministic forecast
    member.attrs["model_name"] = "toydet"
    member.to_netcdf(folder / "deterministic.nc")
    one_member = ensemble.isel({REALIZATION_DIM: [0]})
    one_member.attrs["model_name"] = "toydet"
    one_member.to_netcdf(folder / "one_member.nc")
    return {"folder": folder, "truth": truth, "ensemble": ensemble}


def _run_cli(files, forecast: str, out: str, *extra: str) -> dict[tuple, float]:
    folder = files["folder"]
    parser = argparse.ArgumentParser(prog="stmodel")
    evaluate_command.register(parser.add_subparsers(required=True))
    argv = ["evaluate", "--forecast", str(folder / forecast), "--truth", str(folder / "truth.nc")]
    argv += ["--climatology", str(folder / "climatology.nc"), "--out", str(folder / out)]
    args = parser.parse_args([*argv, "--quiet", *extra])
    assert args.func(args) == 0
    with open(folder / out / "scorecard.csv", newline="") as stream:
        return {
            (row["lead_hours"], row["metric"], row["forecast"]): float(row["value"])
            for row in csv.DictReader(stream)
        }


@pytest.fixture(scope="module")
def ensemble_rows(files):
    return _run_cli(files, "ensemble.nc", "scored")


def _pairwise_crps(members: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Fair CRPS by the O(M^2) definition, members on axis 0."""
    m = members.shape[0]
    skill = np.abs(members - truth).mean(axis=0)
    spread = np.abs(members[:, None] - members[None, :]).sum(axis=(0, 1))
    return skill - spread / (2 * m * (m - 1))


def test_the_scorecard_has_the_probabilistic_climatology_beside_the_ensemble(
    files, ensemble_rows, capsys
):
    forecasts = {key[2] for key in ensemble_rows}
    assert forecasts == {"toyens", "persistence", "climatology", PROBABILISTIC_CLIMATOLOGY}
    for metric in PROBABILISTIC:
        assert ("24", metric, PROBABILISTIC_CLIMATOLOGY) in ensemble_rows, metric
    assert ensemble_rows[("24", "spread", PROBABILISTIC_CLIMATOLOGY)] > 0
    # Its CRPS from the drawn members by the pairwise definition (constant fields: any point).
    drawn = _draw(files["truth"])
    valid = INITS + LEADS[2]
    rows = np.searchsorted(drawn.valid_times, valid.values)
    members = _hours(drawn.source_times[rows]).T  # [member, init]
    expected = _pairwise_crps(members, _hours(valid)).mean()
    np.testing.assert_allclose(
        ensemble_rows[("24", "crps", PROBABILISTIC_CLIMATOLOGY)], expected, rtol=1e-9
    )
    # The JSON scorecard and the printed table have it too.
    records = json.loads((files["folder"] / "scored" / "scorecard.json").read_text())
    assert any(r["forecast"] == PROBABILISTIC_CLIMATOLOGY for r in records)
    _run_cli(files, "ensemble.nc", "scored_printed")
    assert "CRPS prob. clim." in capsys.readouterr().out


def _assert_same(rows: dict, expected: dict) -> None:
    assert rows.keys() == expected.keys()
    for key, value in rows.items():
        assert value == expected[key] or (np.isnan(value) and np.isnan(expected[key])), key


def test_the_same_files_and_seed_give_the_same_scores_another_seed_others(files, ensemble_rows):
    _assert_same(_run_cli(files, "ensemble.nc", "scored_again"), ensemble_rows)
    reseeded = _run_cli(files, "ensemble.nc", "scored_seed_1", "--climatology-seed", "1")
    key = ("24", "crps", PROBABILISTIC_CLIMATOLOGY)
    assert reseeded[key] != ensemble_rows[key]
    assert reseeded[("24", "crps", "toyens")] == ensemble_rows[("24", "crps", "toyens")]
    fewer = _run_cli(files, "ensemble.nc", "scored_3", "--climatology-members", "3")
    assert fewer[key] != ensemble_rows[key]
    none = _run_cli(files, "ensemble.nc", "scored_none", "--climatology-members", "0")
    assert PROBABILISTIC_CLIMATOLOGY not in {k[2] for k in none}


def test_saved_scores_of_another_seed_are_not_reused(files, tmp_path, monkeypatch):
    folder = files["folder"]
    inputs = dict(
        forecast_path=folder / "ensemble.nc",
        truth_paths=[folder / "truth.nc"],
        climatology_path=folder / "climatology.nc",
        out_dir=tmp_path,
        show_progress=False,
    )
    monkeypatch.setattr(partial_scores, "clear", lambda out_dir: None)  # as if interrupted
    seed_0 = evaluate_forecast(**inputs)
    assert partial_scores.partial_path(tmp_path, "surface_pressure").exists()
    seed_1 = evaluate_forecast(
        **inputs, probabilistic_climatology=ProbabilisticClimatologyRequest(seed=1)
    )

    def crps(evaluation):
        return {(r.lead_hours, r.forecast): r.value for r in evaluation.rows if r.metric == "crps"}

    assert (
        crps(seed_0)[(24, PROBABILISTIC_CLIMATOLOGY)]
        != crps(seed_1)[(24, PROBABILISTIC_CLIMATOLOGY)]
    )
    assert crps(seed_0)[(24, "toyens")] == crps(seed_1)[(24, "toyens")]
    fingerprint = lambda seed: partial_scores.fingerprint(
        folder / "ensemble.nc",
        [folder / "truth.nc"],
        None,
        "surface_pressure",
        "toyens",
        ["crps"],
        baselines={"probabilistic_climatology": {"seed": seed}},
    )
    assert fingerprint(0) == fingerprint(0) != fingerprint(1)


def test_a_deterministic_forecast_scores_as_a_one_member_ensemble(files, ensemble_rows):
    metrics = ["rmse", *PROBABILISTIC]
    deterministic = _run_cli(files, "deterministic.nc", "det", "--metrics", *metrics)
    one_member = _run_cli(files, "one_member.nc", "one", "--metrics", *metrics)
    truth = files["truth"]["surface_pressure"].rename(lat="latitude", lon="longitude")
    member = files["ensemble"]["surface_pressure"].isel({REALIZATION_DIM: 0})
    weights = area_weights(truth["latitude"])
    for index, lead in enumerate(LEADS):
        hours = str(int(lead / pd.Timedelta(1, "h")))
        error = member.isel(prediction_timedelta=index) - truth.sel(time=INITS + lead).values
        mae = float((abs(error) * weights).mean(["latitude", "longitude"]).mean())
        for metric in ("crps", "crps_ecdf"):
            np.testing.assert_allclose(deterministic[(hours, metric, "toydet")], mae, rtol=1e-12)
        assert deterministic[(hours, "spread", "toydet")] == 0.0
        assert deterministic[(hours, "spread_skill_ratio", "toydet")] == 0.0
        np.testing.assert_allclose(
            deterministic[(hours, "ensemble_mean_rmse", "toydet")],
            deterministic[(hours, "rmse", "toydet")],
            rtol=1e-14,
        )
    for key, value in one_member.items():
        if key[2] == "toydet":
            np.testing.assert_allclose(deterministic[key], value, rtol=1e-12, err_msg=str(key))
    # No probabilistic climatology beside a deterministic forecast unless asked for; asked
    # for with the ensemble's size, it is the ensemble's (same valid times, same seed), so
    # the deterministic model's scorecard lines up with the ensemble's.
    assert PROBABILISTIC_CLIMATOLOGY not in {key[2] for key in deterministic}
    beside = _run_cli(
        files, "deterministic.nc", "det_beside", "--climatology-members", str(MEMBERS)
    )
    assert {key[1] for key in beside} == {"rmse", "acc", "bias"}
    for key, value in beside.items():
        if key[2] == PROBABILISTIC_CLIMATOLOGY:
            np.testing.assert_allclose(value, ensemble_rows[key], rtol=1e-12, err_msg=str(key))


def test_api_scores_the_probabilistic_climatology_as_the_command_line(files, ensemble_rows):
    scores = stmodel.evaluate(files["ensemble"], files["truth"])
    pressure = scores["surface_pressure"]
    assert PROBABILISTIC_CLIMATOLOGY in pressure["forecast"].values
    crps = pressure.sel(metric="crps", forecast=PROBABILISTIC_CLIMATOLOGY)
    np.testing.assert_allclose(
        crps.isel(prediction_timedelta=2),
        ensemble_rows[("24", "crps", PROBABILISTIC_CLIMATOLOGY)],
        rtol=1e-12,
    )
    assert "probabilistic climatology: 5 members" in scores.attrs["notes"]
    without = stmodel.evaluate(files["ensemble"], files["truth"], climatology_members=0)
    assert PROBABILISTIC_CLIMATOLOGY not in without["surface_pressure"]["forecast"].values
