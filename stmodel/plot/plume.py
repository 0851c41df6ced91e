"""An ensemble plume: every member's forecast at one point against valid time, with the
ensemble mean and, when given, the truth."""

from __future__ import annotations

import numpy as np
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure

from stmodel.data.readers import describe_source
from stmodel.errors import UserError
from stmodel.evaluation.metric_base import REALIZATION_DIM
from stmodel.plot import labels
from stmodel.plot.fields import LEAD_DIM, TimeChoice, is_global, lead_hours_of, select_lazily
from stmodel.plot.members import lazy_members

# A point this far (in grid steps) beyond half a cell from the nearest grid point is
# still taken as on the grid: rounding in the coordinates of the file.
_EDGE_TOLERANCE = 1e-6


def _step(values: np.ndarray) -> float:
    return float(np.median(np.abs(np.diff(values)))) if values.size > 1 else 1.0


def nearest_grid_point(field: xr.DataArray, lat: float, lon: float, source: str) -> tuple[int, int]:
    """(lat index, lon index) of the grid point nearest to (lat, lon), longitudes compared
    round the circle; a point more than half a cell outside the grid is a UserError."""
    lats = field["lat"].values.astype(np.float64)
    lons = field["lon"].values.astype(np.float64)
    lat_index = int(np.argmin(np.abs(lats - lat)))
    east_of = (lons - lon + 180.0) % 360.0 - 180.0  # signed, in [-180, 180)
    lon_index = int(np.argmin(np.abs(east_of)))
    lat_off = abs(lats[lat_index] - lat) > (0.5 + _EDGE_TOLERANCE) * _step(lats)
    lon_off = not is_global(field) and (
        abs(east_of[lon_index]) > (0.5 + _EDGE_TOLERANCE) * _step(lons)
    )
    if not -90.0 <= lat <= 90.0 or lat_off or lon_off:
        raise UserError(
            f"{source}: the point {lat:g} N, {lon:g} E is off the grid of variable "
            f"{field.name!r} (lat {lats.min():g} .. {lats.max():g}, lon {lons.min():g} .. "
            f"{lons.max():g}); expected a point on it"
        )
    return lat_index, lon_index


def _place(lat: float, lon: float) -> str:
    east = (lon + 180.0) % 360.0 - 180.0
    return f"{abs(lat):.4g}°{'N' if lat >= 0 else 'S'}, {abs(east):.4g}°{'E' if east >= 0 else 'W'}"


def _truth_series(
    truth: xr.Dataset | xr.DataArray,
    variable: str | None,
    level: float | None,
    lat: float,
    lon: float,
    valid: np.ndarray,
) -> xr.DataArray:
    """The truth at the grid point nearest to (lat, lon) at the valid times (NaN where it
    has no such time)."""
    source = describe_source(truth)
    field = select_lazily(
        truth, variable if isinstance(truth, xr.Dataset) else None, level=level, keep=("time",)
    )
    if "time" not in field.dims:
        raise UserError(
            f"{source}: the truth's {field.name!r} has no time dim (dims {list(field.dims)}); "
            "expected canonical data covering the plume's valid times"
        )
    lat_index, lon_index = nearest_grid_point(field, lat, lon, source)
    series = field.isel(lat=lat_index, lon=lon_index)
    at_valid = series.reindex(time=valid).load()
    if not np.isfinite(at_valid.values).any():
        raise UserError(
            f"{source}: the truth has no {field.name!r} at the plume's valid times "
            f"{labels.format_time(valid[0])} .. {labels.format_time(valid[-1])}"
        )
    return at_valid


def plot_plume(
    forecast: xr.Dataset | xr.DataArray,
    variable: str | None,
    lat: float,
    lon: float,
    *,
    level: float | None = None,
    time: TimeChoice | None = None,
    truth: xr.Dataset | xr.DataArray | None = None,
    axes: Axes | None = None,
) -> Figure:
    """Every member's forecast of one field at the grid point nearest to (lat, lon),
    against valid time, with the ensemble mean and, when ``truth`` (canonical data) is
    given, the truth at the same point.

    ``forecast``: an ensemble in the WeatherBench 2 layout (a ``realization`` dim);
    ``time``: its initial time (index or date) when it has several. ``lon`` in degrees
    east, either convention (-10 or 350). Pass ``axes`` to draw into an existing figure.
    """
    members = lazy_members(forecast, variable, level=level, time=time)
    source = describe_source(forecast)
    lat_index, lon_index = nearest_grid_point(members, lat, lon, source)
    series = members.isel(lat=lat_index, lon=lon_index).load()  # [realization, lead]
    point_lat, point_lon = float(series["lat"]), float(series["lon"])
    hours = lead_hours_of(series[LEAD_DIM].values)
    init = series["time"].values if "time" in series.coords else None
    if init is not None and np.issubdtype(init.dtype, np.datetime64):
        x = init + (hours * 3600).round().astype("timedelta64[s]")
        x_label = "valid time (UTC)"
    else:
        x, x_label = hours / 24.0, "lead time (days)"
    if axes is None:
        figure = Figure(figsize=(7.0, 3.8), layout="constrained")
        axes = figure.subplots()
    else:
        figure = axes.figure
    count = series.sizes[REALIZATION_DIM]
    for member in range(count):
        axes.plot(
            x,
            series.isel({REALIZATION_DIM: member}).values,
            color="0.55",
            linewidth=0.7,
            alpha=0.8,
            gid="member",
            label=f"members ({count})" if member == 0 else "_nolegend_",
        )
    mean = series.mean(REALIZATION_DIM)
    axes.plot(x, mean.values, color="tab:blue", linewidth=2.0, gid="mean", label="ensemble mean")
    if truth is not None:
        if x_label.startswith("lead"):
            raise UserError(
                f"{source}: the forecast's init time is not a date, so the truth cannot be "
                "matched to its valid times"
            )
        name = variable if variable is not None else series.name
        observed = _truth_series(truth, name, level, point_lat, point_lon, x)
        axes.plot(
            x,
            observed.values,
            color="black",
            linewidth=1.4,
            linestyle="--",
            gid="truth",
            label="truth",
        )
    if x_label.startswith("valid"):
        locator = AutoDateLocator()
        axes.xaxis.set_major_locator(locator)
        axes.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    axes.set_xlabel(x_label)
    axes.set_ylabel(labels.field_label(series))
    symbol = labels.field_symbol(str(series.name), labels.level_of(series))
    when = f", init {labels.format_time(init)}" if x_label.startswith("valid") else ""
    axes.set_title(
        f"{symbol} at {_place(point_lat, point_lon)} (nearest grid point){when}", fontsize=10
    )
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    return figure
