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


def test_a_diverging_initial_time_costs_only_itself(tiny_simulated, tmp_path, capsys):
    # An absurd but finite temperature at one point of the first initial state: that
    # rollout overflows at its first step; the batch's other time and the next batch run on.
    ds = xr.load_dataset(tiny_simulated)
    ds["temperature"].loc[{"time": "2000-01-04T00"}] = (
        ds["temperature"]
        .sel(time="2000-01-04T00")
        .where(lambda t: (t.lat != t.lat[0]) | (t.lon != t.lon[0]), np.float32(1e38))
    )
    broken = tmp_path / "overflow.nc"
    ds.to_netcdf(broken)
    argv = ["--init", "2000-01-04T00/2000-01-04T12/6h", "--lead", "12h", "--batch", "2"]

    def run(data, out):
        return main(["forecast", "--data", str(data), *argv, "--out", str(out), "--quiet"])

    assert run(tiny_simulated, tmp_path / "healthy.nc") == 0
    capsys.readouterr()
    assert run(broken, tmp_path / "diverged.nc") == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "from 1 initial time(s): 2000-01-04T00" in error, error
    healthy, diverged = (xr.load_dataset(tmp_path / f"{n}.nc") for n in ("healthy", "diverged"))
    for name in healthy.data_vars:
        assert np.isnan(diverged[name].isel(time=0)).all()
        # The others bit for bit as in a forecast without the diverging state.
        np.testing.assert_array_equal(
            diverged[name].isel(time=slice(1, None)), healthy[name].isel(time=slice(1, None))
        )
        assert np.isfinite(diverged[name].isel(time=slice(1, None))).all()
    assert diverged.attrs["incomplete"].startswith("diverged initial times: 2000-01-04T00")
    assert "incomplete" not in healthy.attrs
    # stmodel evaluate says so, and scores the other initial times.
    scores = tmp_path / "scores"
    assert (
        main(
            [
                "evaluate",
                "--forecast",
                str(tmp_path / "diverged.nc"),
                "--truth",
                str(tiny_simulated),
                "--out",
                str(scores),
                "--quiet",
            ]
        )
        == 0
    )
    warning = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(warning) == 1 and "diverged.nc is incomplete" in warning[0], warning
    assert "without its diverged initial times 2000-01-04T00" in warning[0]
    rows = (scores / "scorecard.csv").read_text().splitlines()
    model_rows = [row for row in rows if ",stmodel-24h+6h," in row]
    assert model_rows and not [row for row in model_rows if row.endswith(",nan")]
