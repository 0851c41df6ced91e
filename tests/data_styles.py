"""Tiny files in each input style stmodel reads, holding the same numbers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

LEVELS = np.array([50, 500, 850, 1000])
LAT = np.linspace(-78.75, 78.75, 8)  # ascending, regular
LON = np.arange(16) * 22.5  # 0 .. 337.5
SHORT = {
    "geopotential": "z",
    "temperature": "t",
    "u_component_of_wind": "u",
    "surface_pressure": "sp",
    "2m_temperature": "t2m",
}


def truth(n_times: int = 12, seed: int = 0, start: str = "2001-01-01") -> xr.Dataset:
    """Canonical dataset: (time, level, lat, lon), physically plausible magnitudes."""
    rng = np.random.default_rng(seed)
    times = pd.date_range(start, periods=n_times, freq="6h").values
    shape3 = (n_times, len(LEVELS), len(LAT), len(LON))
    shape2 = (n_times, len(LAT), len(LON))
    height = 7000.0 * np.log(1000.0 / LEVELS)  # rough scale height, m
    data = {
        "geopotential": (9.80665 * height[None, :, None, None] + 300 * rng.standard_normal(shape3)),
        "temperature": 250 + 10 * rng.standard_normal(shape3),
        "u_component_of_wind": 10 * rng.standard_normal(shape3),
        "surface_pressure": 1.0e5 + 500 * rng.standard_normal(shape2),
        "2m_temperature": 285 + 5 * rng.standard_normal(shape2),
    }
    ds = xr.Dataset(
        {
            k: (
                ("time", "level", "lat", "lon") if v.ndim == 4 else ("time", "lat", "lon"),
                v.astype(np.float32),
            )
            for k, v in data.items()
        },
        coords={"time": times, "level": LEVELS.astype(np.int32), "lat": LAT, "lon": LON},
    )
    return ds


def write_cds(ds: xr.Dataset, path: Path, *, packed: bool = False) -> Path:
    """ERA5 as the CDS gives it: short names, valid_time/pressure_level, lat 90 -> -90,
    levels descending, float64 (or int16 packed with scale/offset)."""
    out = ds.rename({k: v for k, v in SHORT.items() if k in ds.data_vars})
    out = out.rename(
        {
            k: v
            for k, v in {
                "time": "valid_time",
                "level": "pressure_level",
                "lat": "latitude",
                "lon": "longitude",
            }.items()
            if k in out.dims
        }
    )
    out = out.isel(latitude=slice(None, None, -1))
    if "pressure_level" in out.dims:
        out = out.isel(pressure_level=slice(None, None, -1))
    out = out.astype(np.float64)
    if "pressure_level" in out.dims:
        out["pressure_level"].attrs["units"] = "hPa"
    encoding = {}
    if packed:
        for name in out.data_vars:
            lo, hi = float(out[name].min()), float(out[name].max())
            scale = (hi - lo) / 65000.0
            encoding[name] = {
                "dtype": "int16",
                "scale_factor": scale,
                "add_offset": (hi + lo) / 2,
                "_FillValue": -32767,
            }
    out.to_netcdf(path, encoding=encoding)
    return path


def write_weatherbench2(ds: xr.Dataset, path: Path) -> Path:
    out = ds.rename({"lat": "latitude", "lon": "longitude"})
    if path.suffix == ".zarr":
        out.to_zarr(path, mode="w")
    else:
        out.to_netcdf(path)
    return path


def write_graphcast(ds: xr.Dataset, path: Path) -> Path:
    """GraphCast example style: (batch, time, lat, lon, level), `datetime` coordinate."""
    lead = ds["time"].values - ds["time"].values[0]
    out = ds.assign_coords(time=lead).expand_dims("batch")
    out = out.assign_coords(datetime=(("batch", "time"), ds["time"].values[None, :]))
    for name in out.data_vars:
        dims = [d for d in ("batch", "time", "lat", "lon", "level") if d in out[name].dims]
        out[name] = out[name].transpose(*dims)
    out.to_netcdf(path)
    return path


def write_lon180(ds: xr.Dataset, path: Path) -> Path:
    lon = ((ds["lon"].values + 180) % 360) - 180
    out = ds.assign_coords(lon=lon).sortby("lon").rename({"lat": "latitude", "lon": "longitude"})
    out.to_netcdf(path)
    return path
