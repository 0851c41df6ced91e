"""Synthetic fields and figure inspection for the plotting tests (helpers only: no tests here)."""

from __future__ import annotations

import cartopy.crs as ccrs
import numpy as np
import xarray as xr
from matplotlib.backends.backend_agg import FigureCanvasAgg

# The WeatherBench 5.625 deg grid: 32 latitudes without poles, 64 longitudes.
LAT = -87.1875 + 5.625 * np.arange(32)
LON = 5.625 * np.arange(64)
LEVELS = np.array([500, 850], np.int32)
TIMES = np.array(["2020-01-01T00", "2020-01-01T06", "2020-01-01T12"], "datetime64[ns]")


def canonical_dataset() -> xr.Dataset:
    """Geopotential, temperature, winds and 2 m temperature with plausible shapes and units."""
    time_phase = np.arange(len(TIMES))[:, None, None, None]  # [time, 1, 1, 1]
    lat = np.deg2rad(LAT)[None, None, :, None]  # [1, 1, lat, 1]
    lon = np.deg2rad(LON)[None, None, None, :]  # [1, 1, 1, lon]
    level = LEVELS[None, :, None, None].astype(np.float64)  # [1, level, 1, 1]
    wave = np.cos(lat) * np.sin(3 * lon + 0.3 * time_phase)
    shape = (len(TIMES), len(LEVELS), len(LAT), len(LON))
    geopotential = (
        55000.0 * (500.0 / level) ** 0.35 + 3000.0 * np.cos(2 * lat) + 800.0 * wave
    ) * np.ones(shape)
    temperature = (250.0 + 30.0 * np.cos(lat) ** 2 + 5.0 * wave + (level - 500) * 0.05) * np.ones(
        shape
    )
    u = (30.0 * np.sin(2 * lat) ** 2 - 5.0 + 3 * wave) * np.ones(shape)
    v = (5.0 * np.cos(lat) * np.cos(3 * lon + 0.3 * time_phase)) * np.ones(shape)
    t2m = temperature[:, -1] + 10.0
    dims = ("time", "level", "lat", "lon")
    coords = {"time": TIMES, "level": LEVELS, "lat": LAT, "lon": LON}
    return xr.Dataset(
        {
            "geopotential": (dims, geopotential.astype(np.float32), {"units": "m2 s-2"}),
            "temperature": (dims, temperature.astype(np.float32), {"units": "K"}),
            "u_component_of_wind": (dims, u.astype(np.float32), {"units": "m s-1"}),
            "v_component_of_wind": (dims, v.astype(np.float32), {"units": "m s-1"}),
            "2m_temperature": (("time", "lat", "lon"), t2m.astype(np.float32), {"units": "K"}),
        },
        coords=coords,
    )


def weatherbench_forecast(truth: xr.Dataset, lead_hours=(6, 12)) -> xr.Dataset:
    """A WB2-layout forecast from the first time: truth at init + lead plus a known offset.

    Names latitude/longitude, latitude descending (as ERA5 files have it),
    prediction_timedelta as timedelta64.
    """
    leads = np.asarray(lead_hours).astype("timedelta64[h]").astype("timedelta64[ns]")
    init = truth["time"].values[:1]
    pieces = [truth.sel(time=init[0] + lead) + 100.0 for lead in leads]
    forecast = xr.concat(pieces, dim="prediction_timedelta").drop_vars("time")
    forecast = forecast.assign_coords(prediction_timedelta=leads).expand_dims(time=init)
    forecast = forecast.transpose("time", "prediction_timedelta", ...)
    for name in forecast.data_vars:
        forecast[name].attrs = dict(truth[name].attrs)
    forecast = forecast.rename(lat="latitude", lon="longitude").isel(latitude=slice(None, None, -1))
    return forecast


def regional_dataset() -> xr.Dataset:
    """A British Isles box in canonical form: lon -10 .. 2 (across 0 deg), lat 50 .. 58, 0.5 deg."""
    lat = np.arange(50.0, 58.01, 0.5)
    lon = np.arange(-10.0, 2.01, 0.5)
    values = 280.0 + np.add.outer(-(lat - 50.0) * 0.5, np.sin(np.deg2rad(lon) * 10.0))
    return xr.Dataset(
        {
            "2m_temperature": (
                ("time", "lat", "lon"),
                values[None].astype(np.float32),
                {"units": "K"},
            )
        },
        coords={"time": TIMES[:1], "lat": lat, "lon": lon},
    )


def map_axes(figure):
    """The cartopy GeoAxes of a figure (colour bars are plain axes)."""
    return [axes for axes in figure.axes if hasattr(axes, "projection")]


def colour_bar_labels(figure):
    """Labels of the colour bars of a figure, in the order they were added."""
    return [
        axes.get_xlabel() or axes.get_ylabel()
        for axes in figure.axes
        if not hasattr(axes, "projection") and (axes.get_xlabel() or axes.get_ylabel())
    ]


def white_pixels_inside_map(figure, lat_limit: float) -> int:
    """White (unpainted) pixels inside a PlateCarree map, between +-lat_limit."""
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    image = np.asarray(canvas.buffer_rgba())[..., :3]  # [row, column, rgb], rows from the top
    (axes,) = map_axes(figure)
    box = axes.get_window_extent()
    # pixel rows of the latitude limits (display y counts from the bottom)
    _, north = axes.transData.transform(
        axes.projection.transform_point(0, lat_limit, ccrs.PlateCarree())
    )
    _, south = axes.transData.transform(
        axes.projection.transform_point(0, -lat_limit, ccrs.PlateCarree())
    )
    height = image.shape[0]
    inside = image[
        int(height - north) + 2 : int(height - south) - 2, int(box.x0) + 2 : int(box.x1) - 2
    ]
    return int(np.all(inside > 250, axis=-1).sum())
