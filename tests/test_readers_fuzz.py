"""Fuzzing the readers: random dims, names, orders, dtypes, missing and extra coordinates,
fill values and truncated files. Every case is either read (and then checked) or rejected
with exit code 2 in one line; none may raise anything else."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stmodel.cli import main

TIME_NAMES = ("time", "valid_time", "datetime", "time_counter", "date")
LEVEL_NAMES = ("level", "pressure_level", "isobaricInhPa", "plev", "lev", "height")
LAT_NAMES = ("lat", "latitude", "y", "nav_lat")
LON_NAMES = ("lon", "longitude", "x")
VARIABLES = ("geopotential", "z", "temperature", "t", "u", "2m_temperature", "sp", "foo")
DTYPES = ("float32", "float64", "int16", "int32", "uint8")


@st.composite
def datasets(draw) -> tuple[xr.Dataset, dict]:
    n_time = draw(st.integers(0, 4))
    n_level = draw(st.integers(1, 3))
    n_lat = draw(st.integers(1, 5))
    n_lon = draw(st.integers(1, 6))
    names = {
        "time": draw(st.sampled_from(TIME_NAMES)),
        "level": draw(st.sampled_from(LEVEL_NAMES)),
        "lat": draw(st.sampled_from(LAT_NAMES)),
        "lon": draw(st.sampled_from(LON_NAMES)),
    }
    sizes = {"time": n_time, "level": n_level, "lat": n_lat, "lon": n_lon}
    coords = {
        "time": pd.date_range(
            "2001-01-01", periods=n_time, freq=draw(st.sampled_from(["6h", "1D", "7h"]))
        ).values,
        "level": draw(
            st.sampled_from(
                [np.array([1000, 850, 500]), np.array([50, 500, 925]), np.arange(3) * 1.5]
            )
        )[:n_level],
        "lat": np.linspace(
            draw(st.sampled_from([-90.0, 90.0, 10.0])),
            draw(st.sampled_from([90.0, -90.0, 10.0])),
            n_lat,
        ),
        "lon": np.linspace(
            draw(st.sampled_from([0.0, -180.0, 350.0])),
            draw(st.sampled_from([359.0, 180.0, 0.0])),
            n_lon,
        ),
    }
    data_vars = {}
    for name in draw(st.lists(st.sampled_from(VARIABLES), min_size=0, max_size=4, unique=True)):
        dims = [
            d for d in ("time", "level", "lat", "lon") if draw(st.booleans()) or d in ("lat", "lon")
        ]
        dims = draw(st.permutations(dims))
        shape = [sizes[d] for d in dims]
        values = np.random.default_rng(len(data_vars)).normal(280, 20, shape)
        if draw(st.booleans()):
            values.flat[:: max(1, values.size // 3)] = np.nan
        dtype = np.dtype(draw(st.sampled_from(DTYPES)))
        if dtype.kind != "f":
            values = np.nan_to_num(values)
        data_vars[name] = ([names[d] for d in dims], values.astype(dtype))
    kept = {names[d]: v for d, v in coords.items() if draw(st.booleans()) or d == "time"}
    ds = xr.Dataset(
        data_vars,
        coords={k: v for k, v in kept.items() if any(k in var[0] for var in data_vars.values())},
    )
    if draw(st.booleans()):
        ds = ds.assign_coords(number=0, expver=("extra", ["0001"]))
    options = {
        "fill": draw(st.sampled_from([None, -9999.0, np.nan])),
        "truncate": draw(st.sampled_from([None, 0, 100, 0.5])),
        "units": draw(st.sampled_from([None, "K", "m**2 s**-2", "degC", "furlongs"])),
    }
    return ds, options


@pytest.mark.slow
@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(case=datasets())
def test_every_file_is_read_or_rejected_in_one_line(case, tmp_path_factory, capsys):
    ds, options = case
    path = tmp_path_factory.mktemp("fuzz") / "case.nc"
    encoding = {}
    for name in ds.data_vars:
        if options["units"]:
            ds[name].attrs["units"] = options["units"]
        if options["fill"] is not None and ds[name].dtype.kind == "f":
            encoding[name] = {"_FillValue": options["fill"]}
    ds.to_netcdf(path, encoding=encoding)
    if options["truncate"] is not None:
        size = path.stat().st_size
        keep = (
            int(size * options["truncate"])
            if isinstance(options["truncate"], float)
            else options["truncate"]
        )
        path.write_bytes(path.read_bytes()[:keep])
    capsys.readouterr()  # only what the command says
    code = main(["data", "check", str(path)])
    output = capsys.readouterr()
    assert code in (0, 2), output.err
    if code == 2 and output.err:  # unreadable: one line
        assert output.err.count("\n") == 1 and output.err.startswith("stmodel: error: ")
    elif code == 2:  # read, and the report lists what is wrong
        assert "problems:" in output.out
