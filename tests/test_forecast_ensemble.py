"""Ensemble forecasts: members in the realization dim of NetCDF, Zarr and in-memory
forecasts alike, the same bit for bit whatever the batch, a function of the seed; the
perturbed-initial-condition and lagged baselines; the deterministic layout unchanged."""

from __future__ import annotations

import dataclasses
import functools

import netCDF4
import numpy as np
import pytest
import xarray as xr

import stmodel
from stmodel.checkpoints.global_model import CheckpointModel
from stmodel.cli import main
from stmodel.errors import UserError
from stmodel.forecasting import forecast as forecast_module
from stmodel.forecasting.ensemble import forecast_noise
from stmodel.forecasting.forecast_file import ForecastWriter
from stmodel.model.parameter_names import named_arrays, replace_by_name
from stmodel.models import DEFAULT_MODELS

INITS = ["2000-01-02T00", "2000-01-02T12"]
LEAD = "24h"  # leads 6, 12, 18 h by 6 h steps and 24 h by one 24 h step


def _cli(data, out, *extra) -> int:
    argv = ["forecast", "--data", str(data), "--init", *INITS, "--lead", LEAD, "--quiet"]
    return main([*argv, "--out", str(out), *extra])


@pytest.fixture(scope="module")
def models():
    return [stmodel.load_model(name) for name in DEFAULT_MODELS]


@pytest.fixture(scope="module")
def perturbed(tiny_simulated, tmp_path_factory):
    """The same 2-member perturbed ensemble as NetCDF (batch 1) and Zarr (batch 3)."""
    folder = tmp_path_factory.mktemp("ensemble")
    ensemble = ("--members", "2", "--perturb", "--seed", "7")
    assert _cli(tiny_simulated, folder / "e.nc", *ensemble, "--batch", "1") == 0
    assert _cli(tiny_simulated, folder / "e.zarr", *ensemble, "--batch", "3") == 0
    return folder / "e.nc", folder / "e.zarr"


def _without_paths(dataset: xr.Dataset) -> xr.Dataset:
    """The forecast less the attributes naming where models and data came from."""
    drop = ("source", "checkpoints", "initial_condition_data")
    dataset = dataset.copy()
    dataset.attrs = {k: v for k, v in dataset.attrs.items() if k not in drop}
    return dataset


def test_members_are_in_the_realization_dim_alike_in_netcdf_zarr_and_memory(
    perturbed, tiny_simulated, models
):
    netcdf = xr.open_dataset(perturbed[0]).load()
    store = xr.open_zarr(perturbed[1]).load()
    assert list(netcdf["geopotential"].dims) == [
        "time",
        "realization",
        "prediction_timedelta",
        "level",
        "latitude",
        "longitude",
    ]
    assert netcdf["realization"].values.tolist() == [0, 1]
    assert netcdf["realization"].dtype == np.int32
    assert store["geopotential"].encoding["chunks"] == (1, 1, 1, 13, 32, 64)
    # batch 1 (NetCDF) and batch 3 (Zarr) give the same numbers bit for bit
    xr.testing.assert_identical(netcdf, store)
    with xr.open_dataset(tiny_simulated) as data:
        memory = stmodel.forecast(
            data, INITS, LEAD, models, members=2, perturb=True, seed=7, batch_size=2, progress=False
        )
    xr.testing.assert_identical(_without_paths(memory), _without_paths(netcdf))
    assert netcdf.attrs["ensemble_members"] == "2" and netcdf.attrs["ensemble_seed"] == "7"
    # members differ, from the initial state on
    z500 = netcdf["geopotential"].sel(level=500)
    assert np.isfinite(z500.values).all()
    spread = abs(z500.isel(realization=0) - z500.isel(realization=1))
    assert (spread.mean(("latitude", "longitude")) > 1.0).all()


def test_another_seed_is_another_forecast_and_batches_stay_bounded(
    perturbed, tiny_simulated, models, monkeypatch
):
    read = []
    original = forecast_module.initial_states

    def counted(ds, model, times):
        read.append(len(times))
        return original(ds, model, times)

    monkeypatch.setattr(forecast_module, "initial_states", counted)
    steps = []
    monkeypatch.setattr(
        forecast_module,
        "_checked_advance",
        functools.partial(_count_states, forecast_module._checked_advance, steps),
    )
    with xr.open_dataset(tiny_simulated) as data:
        other = stmodel.forecast(
            data, INITS, 6, models, members=2, perturb=0.5, seed=8, batch_size=3, progress=False
        )
    # 2 init times x 2 members in batches of at most 3 states: 2 batches, never more states
    assert len(read) == 2 and max(steps) == 3 and sum(steps) == 4
    seed_7 = xr.open_dataset(perturbed[0]).sel(prediction_timedelta=other.prediction_timedelta)
    difference = abs(other["temperature"] - seed_7["temperature"]).mean(("latitude", "longitude"))
    assert (difference > 0.01).all()


def _count_states(advance, counts, model, params, upper, surface, *noise):
    counts.append(upper.shape[0])  # traced once per batch shape and model
    return advance(model, params, upper, surface, *noise)


def test_several_members_of_a_deterministic_model_are_refused_naming_perturb(
    tiny_simulated, tmp_path, capsys, models
):
    deterministic = ["--checkpoint", *DEFAULT_MODELS]
    assert _cli(tiny_simulated, tmp_path / "e.nc", "--members", "2", *deterministic) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "--members 2" in error and "--perturb" in error
    assert list(tmp_path.iterdir()) == []
    with xr.open_dataset(tiny_simulated) as data:
        with pytest.raises(UserError, match="members 2: the model is deterministic.*perturb"):
            stmodel.forecast(data, INITS, 6, models, members=2, progress=False)


def test_the_lagged_ensemble_is_the_earlier_forecasts_at_the_same_valid_times(
    tiny_simulated, models
):
    with xr.open_dataset(tiny_simulated) as data:
        lagged = stmodel.forecast(data, INITS, [6, 24], models, lagged=2, progress=False)
        starts = ["2000-01-01T18", "2000-01-02T00", "2000-01-02T06", "2000-01-02T12"]
        single = stmodel.forecast(data, starts, [6, 12, 24, 30], models, progress=False)
        with pytest.raises(UserError, match="lagged 2: .*1999-12-31T18.*not in the data"):
            stmodel.forecast(data, "2000-01-01T00", 6, models, lagged=2, progress=False)
    assert lagged.sizes["realization"] == 2
    hours = lagged["prediction_timedelta"].values / np.timedelta64(1, "h")
    assert hours.tolist() == [6, 24]
    for i, init in enumerate(np.asarray(INITS, "datetime64[ns]")):
        for k in range(2):
            start = init - np.timedelta64(6 * k, "h")
            for lead in (6, 24):
                member = lagged.isel(time=i, realization=k)
                member = member.sel(prediction_timedelta=np.timedelta64(lead, "h"))
                earlier = single.sel(
                    time=start, prediction_timedelta=np.timedelta64(lead + 6 * k, "h")
                )
                for name in ("geopotential", "surface_pressure"):
                    assert np.array_equal(member[name].values, earlier[name].values)


def test_the_noise_is_a_function_of_seed_init_time_member_and_step_only():
    times = np.asarray(["2000-01-02T00", "2000-01-02T12", "2000-01-02T12"], "datetime64[ns]")
    together = np.asarray(forecast_noise(3, times, np.array([0, 0, 1]), 6, 8))
    alone = np.asarray(forecast_noise(3, times[2:], np.array([1]), 6, 8))
    assert together.shape == (3, 8) and together.dtype == np.float32
    assert np.array_equal(together[2], alone[0])  # not a function of the batch
    assert len({row.tobytes() for row in together}) == 3
    for other in (
        forecast_noise(4, times[2:], np.array([1]), 6, 8),  # seed
        forecast_noise(3, times[2:], np.array([1]), 12, 8),  # step
        forecast_noise(3, times[:1], np.array([1]), 6, 8),  # init time
    ):
        assert not np.array_equal(np.asarray(other)[0], alone[0])


def _stochastic_from(name: str, noise_dim: int = 4) -> CheckpointModel:
    """A stochastic model (ModelConfig.noise_dim > 0) warm-started from a shipped one, its
    zero-initialised noise modulations then set at random so that the noise matters."""
    shipped = CheckpointModel.load(name)
    model = CheckpointModel.initialise(
        dataclasses.replace(shipped.model_config, noise_dim=noise_dim),
        shipped.layout,
        shipped.norm,
        shipped.constants,
        lat=shipped.lat,
        lon=shipped.lon,
        dt_hours=shipped.dt_hours,
        seed=0,
    )
    params = model.warm_start_from(name)
    rng = np.random.default_rng(0)
    noisy = {
        n: 0.1 * rng.standard_normal(np.shape(x)).astype(np.float32)
        for n, x in named_arrays(params).items()
        if "_noise." in n
    }
    assert noisy, "the stochastic network has no noise modulations"
    return dataclasses.replace(model, params=replace_by_name(params, noisy))


def test_a_stochastic_model_gets_noise_for_every_member_and_step(tiny_simulated):
    model = _stochastic_from("stmodel-small-6h")
    with xr.open_dataset(tiny_simulated) as data:
        runs = [
            stmodel.forecast(data, INITS[:1], 12, [model], members=2, batch_size=b, progress=False)
            for b in (1, 2)
        ]
    xr.testing.assert_identical(*runs)
    t = runs[0]["temperature"]
    assert not np.array_equal(t.isel(realization=0).values, t.isel(realization=1).values)


def test_the_deterministic_layout_is_unchanged(models, tmp_path):
    """dims, coordinates, attributes and storage of a deterministic forecast, as before
    forecasts had a template (and a realization dim for ensembles)."""
    model = models[1]
    times = np.asarray(["2000-01-02T00", "2000-01-02T12"], "datetime64[ns]")
    writer = ForecastWriter(
        tmp_path / "f.nc", times, [6, 12], model.layout, model.lat, model.lon, {"a": 1}
    )
    writer.close()
    with netCDF4.Dataset(tmp_path / "f.nc") as nc:
        assert {k: nc.getncattr(k) for k in nc.ncattrs()} == {"Conventions": "CF-1.8", "a": "1"}
        assert {k: len(v) for k, v in nc.dimensions.items()} == {
            "time": 2,
            "prediction_timedelta": 2,
            "level": 13,
            "latitude": 32,
            "longitude": 64,
        }
        time = nc["time"]
        assert time.dtype == np.float64 and time[:].tolist() == [262992.0, 263004.0]
        assert {k: time.getncattr(k) for k in time.ncattrs()} == {
            "standard_name": "forecast_reference_time",
            "long_name": "initialisation time",
            "axis": "T",
            "units": "hours since 1970-01-01 00:00:00",
            "calendar": "proleptic_gregorian",
        }
        lead = nc["prediction_timedelta"]
        assert lead.dtype == np.int32 and lead[:].tolist() == [6, 12]
        assert {k: lead.getncattr(k) for k in lead.ncattrs()} == {
            "standard_name": "forecast_period",
            "long_name": "lead time",
            "units": "hours",
            "dtype": "timedelta64[ns]",
        }
        assert nc["level"].dtype == np.int32 and nc["level"].units == "hPa"
        assert nc["latitude"].dtype == np.float64 and nc["latitude"].units == "degrees_north"
        for name in ("time", "prediction_timedelta", "level", "latitude", "longitude"):
            assert nc[name].chunking() == "contiguous" and "_FillValue" not in nc[name].ncattrs()
        z = nc["geopotential"]
        assert z.dimensions == ("time", "prediction_timedelta", "level", "latitude", "longitude")
        assert z.dtype == np.float32 and z.chunking() == [1, 1, 13, 32, 64]
        assert np.isnan(z.getncattr("_FillValue")) and z.units == "m2 s-2"
        assert z.long_name == "geopotential"
        sp = nc["surface_pressure"]
        assert sp.dimensions == ("time", "prediction_timedelta", "latitude", "longitude")
        assert sp.chunking() == [1, 1, 32, 64] and sp.units == "Pa"
        assert not any(z.filters().values())


def test_several_members_without_checkpoint_take_the_shipped_stochastic_pair(
    tiny_simulated, tmp_path
):
    assert _cli(tiny_simulated, tmp_path / "e.nc", "--members", "2") == 0
    with xr.open_dataset(tmp_path / "e.nc") as ensemble:
        assert "stmodel-small-24h-ens" in ensemble.attrs["checkpoints"]
        assert "stochastic model noise" in ensemble.attrs["ensemble_method"]
        t = ensemble["temperature"]
        assert not np.array_equal(t.isel(realization=0).values, t.isel(realization=1).values)
