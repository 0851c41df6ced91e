"""Forecasts written lead by lead to NetCDF or Zarr, by the --out suffix: the same forecast
either way, nothing left behind by a failed run, and any other suffix refused."""

import os
import signal

import numpy as np
import pytest
import xarray as xr

from stmodel.cli import main
from stmodel.evaluation.forecast_layout import open_forecast
from stmodel.forecasting.forecast_file import ForecastZarrWriter


def _forecast(data, out, *extra) -> int:
    argv = ["forecast", "--data", str(data), "--init", "2000-01-02T00", "2000-01-02T12"]
    return main([*argv, "--lead", "18h", "--batch", "1", "--out", str(out), "--quiet", *extra])


def test_the_zarr_store_holds_the_netcdf_forecast(tiny_simulated, tmp_path):
    assert _forecast(tiny_simulated, tmp_path / "forecast.nc") == 0
    assert _forecast(tiny_simulated, tmp_path / "forecast.zarr") == 0
    netcdf = xr.open_dataset(tmp_path / "forecast.nc").load()
    store = xr.open_zarr(tmp_path / "forecast.zarr").load()
    xr.testing.assert_identical(netcdf, store)  # values, coordinates and attributes
    assert store.attrs["model_name"] == "stmodel-24h+6h"
    assert store["prediction_timedelta"].values.tolist() == [
        np.timedelta64(h, "h").astype("timedelta64[ns]") for h in (6, 12, 18)
    ]
    assert store["geopotential"].encoding["chunks"] == (1, 1, 13, 32, 64)  # per (init, lead)
    assert np.isfinite(store["geopotential"].values).all()
    # stmodel evaluate opens both the same way
    xr.testing.assert_identical(
        open_forecast(tmp_path / "forecast.nc").load(),
        open_forecast(tmp_path / "forecast.zarr").load(),
    )


@pytest.mark.parametrize("out", ["forecast.grib", "forecast", "forecast.nc4"])
def test_an_output_of_another_format_is_refused_in_one_line(tiny_simulated, tmp_path, out, capsys):
    assert _forecast(tiny_simulated, tmp_path / out) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "--out" in error and ".nc" in error and ".zarr" in error
    assert list(tmp_path.iterdir()) == []


def test_a_folder_that_is_not_a_zarr_store_is_not_replaced(tiny_simulated, tmp_path, capsys):
    folder = tmp_path / "results.zarr"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    assert _forecast(tiny_simulated, folder) == 2
    assert "not a Zarr store" in capsys.readouterr().err
    assert (folder / "notes.txt").read_text() == "keep me"


def test_an_interrupted_zarr_forecast_leaves_no_store(tiny_simulated, tmp_path, monkeypatch):
    original_write = ForecastZarrWriter.write

    def write_then_interrupt(self, *args):
        original_write(self, *args)
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C in the middle of the rollout

    monkeypatch.setattr(ForecastZarrWriter, "write", write_then_interrupt)
    assert _forecast(tiny_simulated, tmp_path / "forecast.zarr") == 128 + signal.SIGINT
    assert list(tmp_path.iterdir()) == []  # neither the store nor a temporary folder


def test_a_failed_zarr_forecast_keeps_the_previous_store(
    tiny_simulated, tmp_path, monkeypatch, capsys
):
    out = tmp_path / "forecast.zarr"
    assert _forecast(tiny_simulated, out) == 0
    before = xr.open_zarr(out).load()

    def fail(self, *args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ForecastZarrWriter, "write", fail)
    assert _forecast(tiny_simulated, out, "--lead", "6h") != 0
    assert "No space left on device" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["forecast.zarr"]
    xr.testing.assert_identical(xr.open_zarr(out).load(), before)
