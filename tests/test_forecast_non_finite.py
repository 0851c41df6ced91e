"""Non-finite values: refused in the initial states, and a rollout that blows up stops, naming
the lead, keeps what it computed before, and exits non-zero."""

import os
import signal

import numpy as np
import xarray as xr

from stmodel.cli import main
from stmodel.forecasting.forecast_file import ForecastWriter
from stmodel.models import read_pretrained, resolve_checkpoint, write_pretrained


def _forecast(data, out, *extra) -> int:
    argv = ["forecast", "--data", str(data), "--init", "2000-01-04T00", "--lead", "30h"]
    return main([*argv, "--out", str(out), "--quiet", *extra])


def test_a_nan_in_the_initial_state_is_refused_naming_time_and_variable(
    tiny_simulated, tmp_path, capsys
):
    ds = xr.load_dataset(tiny_simulated)
    ds["temperature"].loc[{"time": "2000-01-04T00"}] = (
        ds["temperature"].sel(time="2000-01-04T00").where(lambda t: t.lat < 80)
    )  # NaN north of 80 deg
    broken = tmp_path / "holes.nc"
    ds.to_netcdf(broken)
    out = tmp_path / "forecast.nc"
    assert _forecast(broken, out) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1, error
    assert "temperature" in error and "2000-01-04T00" in error and "NaN" in error
    assert not out.exists()


def test_a_rollout_that_turns_non_finite_stops_and_keeps_the_earlier_leads(
    tiny_simulated, tmp_path, capsys
):
    # A 24 h model whose weights are NaN: leads 6-18 h come from the 6 h model first,
    # lead 24 h from the broken one.
    meta, params, static = read_pretrained(resolve_checkpoint("stmodel-small-24h"))
    broken = tmp_path / "broken-24h"
    nan_params = {name: np.full_like(value, np.nan) for name, value in params.items()}
    write_pretrained(broken, meta, nan_params, static, "float32", "# broken\n")
    out = tmp_path / "forecast.nc"
    assert _forecast(tiny_simulated, out, "--checkpoint", str(broken), "stmodel-small-6h") == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "lead 24 h" in error and "2000-01-04T00" in error, error
    forecast = xr.open_dataset(out)
    z500 = forecast["geopotential"].sel(level=500).isel(time=0)
    hours = forecast["prediction_timedelta"].values / np.timedelta64(1, "h")
    finite = {
        int(h): bool(np.isfinite(z500.isel(prediction_timedelta=i)).all())
        for i, h in enumerate(hours)
    }
    assert finite == {6: True, 12: True, 18: True, 24: False, 30: False}
    assert "non-finite at lead 24 h" in forecast.attrs["incomplete"]


def test_an_interrupted_forecast_exits_130_and_leaves_nothing(
    tiny_simulated, tmp_path, monkeypatch, capsys
):
    handler_before = signal.getsignal(signal.SIGINT)
    original_write = ForecastWriter.write

    def write_then_interrupt(self, *args):
        original_write(self, *args)
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C in the middle of the rollout

    monkeypatch.setattr(ForecastWriter, "write", write_then_interrupt)
    out = tmp_path / "forecast.nc"
    assert _forecast(tiny_simulated, out) == 128 + signal.SIGINT
    captured = capsys.readouterr()
    assert "model stmodel-small-24h: step" in captured.out  # which step each model is at
    assert "forecast stopped" in captured.err and "Traceback" not in captured.err
    assert list(tmp_path.iterdir()) == []  # neither the output nor a temporary file
    assert signal.getsignal(signal.SIGINT) == handler_before  # put back as it was
