"""From a Dataset or DataArray in canonical or WeatherBench 2 layout to one 2-D map field.

Accepted layouts:

* stmodel canonical: dims (time, level, lat, lon), lat ascending, lon in
  [0, 360) or a contiguous regional box such as -10 .. 2;
* WeatherBench 2 forecasts: dims (time, prediction_timedelta, level,
  latitude, longitude), where ``time`` is the initialisation time.

A map field is a DataArray with dims (lat, lon), lat and lon ascending, loaded
into memory, with the selected time / level / lead kept as scalar coordinates
(the titles read them).
"""

from __future__ import annotations

from collections.abc import Sequence

import cartopy.util
import numpy as np
import pandas as pd
import xarray as xr

from stmodel.data.canonical import canonical_dim_renames, wrap_longitude
from stmodel.data.readers import describe_source
from stmodel.errors import UserError

LEAD_DIM = "prediction_timedelta"
# Relative tolerance when deciding that longitudes cover the whole circle.
_GLOBAL_TOLERANCE = 1e-3

Extent = tuple[float, float, float, float]  # (lon_min, lon_max, lat_min, lat_max), degrees
# What select_field takes as ``time`` (an index or a date) and ``lead`` (hours or a timedelta).
TimeChoice = int | str | np.datetime64 | pd.Timestamp
LeadChoice = float | str | np.timedelta64 | pd.Timedelta


def select_field(
    data: xr.Dataset | xr.DataArray,
    variable: str | None = None,
    *,
    level: float | None = None,
    time=None,
    lead=None,
    keep: Sequence[str] = (),
) -> xr.DataArray:
    """One 2-D (lat, lon) field, loaded, from canonical or WeatherBench 2 data.

    ``level`` in hPa; ``time`` an index (int) or a date ("2019-03-05T12");
    ``lead`` in hours or a timedelta (WeatherBench 2 forecasts only). A
    dimension of size 1 needs no selection; any other must be selected, and
    the error says which values there are. Dims named in ``keep`` (an
    ensemble's ``realization``) are kept whole, before (lat, lon).
    """
    field = select_lazily(data, variable, level=level, time=time, lead=lead, keep=keep)
    return field.sortby("lat").sortby("lon").load()


def select_lazily(
    data: xr.Dataset | xr.DataArray,
    variable: str | None = None,
    *,
    level: float | None = None,
    time=None,
    lead=None,
    keep: Sequence[str] = (),
) -> xr.DataArray:
    """As :func:`select_field`, but not loaded nor sorted: for taking a few points of a
    large forecast. ``keep`` may also name ``time`` or ``prediction_timedelta``, which are
    then not selected; kept dims come first, in the order given."""
    field = pick_variable(data, variable)
    source = describe_source(data)
    field = field.rename(canonical_dim_renames(field))
    for dim in ("lat", "lon"):
        if dim not in field.dims:
            raise UserError(
                f"{source}: variable {field.name!r} has no {dim} dimension (dims "
                f"{list(field.dims)}); expected lat/latitude and lon/longitude"
            )
    field = select_level(field, level, source)
    if LEAD_DIM not in keep:
        field = _select_lead(field, lead, source)
    if "time" not in keep:
        field = _select_time(field, time, source)
    extra = [dim for dim in field.dims if dim not in ("lat", "lon", *keep)]
    too_big = [f"{dim} ({field.sizes[dim]})" for dim in extra if field.sizes[dim] > 1]
    if too_big:
        raise UserError(
            f"{source}: variable {field.name!r} still has dimensions "
            f"{', '.join(too_big)} after selecting level/time/lead; select one value "
            "of each first, e.g. data.isel(month=0)"
        )
    field = field.squeeze(extra, drop=False)
    return field.transpose(*[dim for dim in keep if dim in field.dims], "lat", "lon")


def on_grid_of(
    field: xr.DataArray, reference: xr.DataArray, source: str, role: str
) -> xr.DataArray:
    """``field`` (the truth, a climatology: ``role``) with the (lat, lon) coordinates of
    the forecast field ``reference`` (which may have more dims, such as members), after
    checking both grids are the same."""
    same_grid = (
        all(field.sizes[dim] == reference.sizes[dim] for dim in ("lat", "lon"))
        and np.allclose(field["lat"].values, reference["lat"].values)
        and np.allclose(field["lon"].values, reference["lon"].values)
    )
    if not same_grid:
        raise UserError(
            f"{source}: the {role} grid ({field.sizes['lat']} x "
            f"{field.sizes['lon']}, lon {float(field['lon'][0]):g} .. "
            f"{float(field['lon'][-1]):g}) differs from the forecast grid "
            f"({reference.sizes['lat']} x {reference.sizes['lon']}, lon "
            f"{float(reference['lon'][0]):g} .. {float(reference['lon'][-1]):g}); "
            "regrid one onto the other first"
        )
    # Coordinates written by different tools differ in the last bits (1e-14 deg): give
    # the field the forecast's, or xarray's subtraction keeps only the exactly equal points.
    return field.assign_coords(lat=reference["lat"].values, lon=reference["lon"].values)


def pick_variable(data: xr.Dataset | xr.DataArray, variable: str | None) -> xr.DataArray:
    """The named data variable of a Dataset (None: its only one), or the DataArray itself."""
    if isinstance(data, xr.DataArray):
        if variable is not None and data.name is not None and data.name != variable:
            raise UserError(
                f"{describe_source(data)}: asked for variable {variable!r} but was "
                f"given the DataArray {data.name!r}"
            )
        return data if data.name is not None or variable is None else data.rename(variable)
    names = list(data.data_vars)
    if variable is None:
        if len(names) == 1:
            return data[names[0]]
        raise UserError(
            f"{describe_source(data)}: holds {len(names)} variables "
            f"({', '.join(names)}); say which to plot with variable=..."
        )
    if variable not in data.data_vars:
        raise UserError(
            f"{describe_source(data)}: no variable {variable!r}; it has "
            f"{', '.join(names) or 'no data variables'}"
        )
    return data[variable]


def select_level(field: xr.DataArray, level, source: str) -> xr.DataArray:
    """``field`` at ``level`` hPa (None: its only level); a surface field as it is."""
    if "level" not in field.dims:
        if level is not None and not ("level" in field.coords and field["level"].item() == level):
            raise UserError(
                f"{source}: variable {field.name!r} is a surface field (no level "
                f"dimension) but level={level} was asked for"
            )
        return field
    levels = field["level"].values
    if level is None:
        if len(levels) == 1:
            return field.isel(level=0)
        raise UserError(
            f"{source}: variable {field.name!r} has levels "
            f"{_list(levels)} hPa; say which to plot with level=..."
        )
    matches = np.flatnonzero(np.isclose(levels.astype(np.float64), float(level)))
    if not len(matches):
        raise UserError(
            f"{source}: variable {field.name!r} has no level {level} hPa; it has {_list(levels)}"
        )
    return field.isel(level=int(matches[0]))


def lead_hours_of(values) -> np.ndarray:
    """Lead times (timedelta64, or numbers already in hours) as float hours."""
    values = np.asarray(values)
    if np.issubdtype(values.dtype, np.timedelta64):
        return values / np.timedelta64(1, "h")
    return values.astype(np.float64)


def as_hours(lead) -> float:
    """A lead given as hours (a number), a timedelta or a string such as "36h", in hours."""
    # np.timedelta64 is a numpy integer type: test for it first.
    if isinstance(lead, (np.timedelta64, pd.Timedelta)) or not isinstance(
        lead, (int, float, np.integer, np.floating)
    ):
        return pd.Timedelta(lead) / pd.Timedelta(hours=1)
    return float(lead)


def _select_lead(field: xr.DataArray, lead, source: str) -> xr.DataArray:
    if LEAD_DIM not in field.dims:
        if lead is not None and LEAD_DIM not in field.coords:
            raise UserError(
                f"{source}: variable {field.name!r} has no {LEAD_DIM} dimension "
                f"(not a forecast in WeatherBench 2 layout) but lead={lead} was "
                "asked for"
            )
        return field
    hours = lead_hours_of(field[LEAD_DIM].values)
    if lead is None:
        if len(hours) == 1:
            return field.isel({LEAD_DIM: 0})
        raise UserError(
            f"{source}: variable {field.name!r} has {len(hours)} lead times "
            f"({_list(hours)} h); say which to plot with lead=HOURS"
        )
    matches = np.flatnonzero(np.isclose(hours, as_hours(lead)))
    if not len(matches):
        raise UserError(
            f"{source}: variable {field.name!r} has no lead of {as_hours(lead):g} h; "
            f"it has {_list(hours)} h"
        )
    return field.isel({LEAD_DIM: int(matches[0])})


def _select_time(field: xr.DataArray, time, source: str) -> xr.DataArray:
    if "time" not in field.dims:
        return field
    times = field["time"].values
    if time is None:
        if len(times) == 1:
            return field.isel(time=0)
        raise UserError(
            f"{source}: variable {field.name!r} has {len(times)} times "
            f"({_time_text(times[0])} .. {_time_text(times[-1])}); say which to plot "
            "with time=INDEX or time='YYYY-MM-DDTHH'"
        )
    if isinstance(time, (int, np.integer)):
        if not -len(times) <= time < len(times):
            raise UserError(
                f"{source}: time index {time} is out of range; variable "
                f"{field.name!r} has {len(times)} times"
            )
        return field.isel(time=int(time))
    wanted = np.datetime64(pd.Timestamp(time).to_datetime64(), "ns")
    matches = np.flatnonzero(times.astype("datetime64[ns]") == wanted)
    if not len(matches):
        raise UserError(
            f"{source}: variable {field.name!r} has no time {_time_text(wanted)}; "
            f"its {len(times)} times run {_time_text(times[0])} .. "
            f"{_time_text(times[-1])}"
        )
    return field.isel(time=int(matches[0]))


def _time_text(value) -> str:
    if np.issubdtype(np.asarray(value).dtype, np.datetime64):
        return np.datetime_as_string(np.datetime64(value, "m"))
    return str(value)


def _list(values: Sequence) -> str:
    values = [
        f"{value:g}" if isinstance(value, (float, np.floating)) else str(value)
        for value in np.asarray(values).tolist()
    ]
    return ", ".join(values) if len(values) <= 12 else f"{', '.join(values[:5])}, ..., {values[-1]}"


def valid_time_of(field: xr.DataArray) -> np.datetime64 | None:
    """Valid time of a selected field: time (+ lead for WeatherBench 2 forecasts)."""
    if "time" not in field.coords or field["time"].ndim != 0:
        return None
    time = field["time"].values
    if not np.issubdtype(time.dtype, np.datetime64):
        return None
    if LEAD_DIM in field.coords and field[LEAD_DIM].ndim == 0:
        hours = float(lead_hours_of(field[LEAD_DIM].values))
        return time + np.timedelta64(int(round(hours * 3600)), "s")
    return time


def lead_of(field: xr.DataArray) -> float | None:
    """Lead time in hours of a selected forecast field, if it has one."""
    if LEAD_DIM in field.coords and field[LEAD_DIM].ndim == 0:
        return float(lead_hours_of(field[LEAD_DIM].values))
    return None


def longitude_spacing(field: xr.DataArray) -> float | None:
    """The grid's longitude step in degrees if uniform, else None."""
    lon = field["lon"].values.astype(np.float64)
    if len(lon) < 2:
        return None
    steps = np.diff(lon)
    return float(steps[0]) if np.allclose(steps, steps[0], rtol=_GLOBAL_TOLERANCE) else None


def is_global(field: xr.DataArray) -> bool:
    """True when the longitudes go all the way round (n * step = 360 deg)."""
    step = longitude_spacing(field)
    return step is not None and abs(field.sizes["lon"] * step - 360.0) < _GLOBAL_TOLERANCE * 360.0


def with_cyclic_point(field: xr.DataArray) -> xr.DataArray:
    """A global field with its first longitude repeated at +360 deg, so maps have no seam.

    Fields that are not global, or already cyclic, are returned unchanged.
    """
    if not is_global(field):
        return field
    data, lon = cartopy.util.add_cyclic_point(field.values, coord=field["lon"].values, axis=-1)
    return xr.DataArray(
        data,
        dims=("lat", "lon"),  # [lat, lon + 1]
        coords={
            **{name: coord for name, coord in field.coords.items() if name not in ("lat", "lon")},
            "lat": field["lat"].values,
            "lon": lon,
        },
        name=field.name,
        attrs=field.attrs,
    )


def centred_on(field: xr.DataArray, central_longitude: float) -> xr.DataArray:
    """A global field with longitudes rolled into [c - 180, c + 180], cyclic point included.

    Vector regridding (quiver, streamlines) only samples the longitude range
    the source coordinates span, so they must match the map's range.
    """
    west = central_longitude - 180.0
    rolled = wrap_longitude(field["lon"].values, west)
    order = np.argsort(rolled, kind="stable")
    lon = np.append(rolled[order], rolled[order][0] + 360.0)
    return field.isel(lon=np.append(order, order[0])).assign_coords(lon=lon)


def zoom(field: xr.DataArray, extent: Extent, *, margin_cells: int = 2) -> xr.DataArray:
    """The part of a field inside extent (lon_min, lon_max, lat_min, lat_max), plus a margin.

    Longitudes are first brought to the convention the extent uses, so a box
    across 0 deg (-10 .. 2) can be cut from a global [0, 360) field.
    """
    lon_min, lon_max, lat_min, lat_max = extent
    if lon_min >= lon_max or lat_min >= lat_max:
        raise UserError(
            f"extent {extent}: expected (lon_min, lon_max, lat_min, lat_max) with "
            "lon_min < lon_max and lat_min < lat_max"
        )
    lon = field["lon"].values.astype(np.float64)
    if lon_min < 0 and lon.max() > 180:
        field = field.assign_coords(lon=wrap_longitude(lon, -180.0)).sortby("lon")
    elif lon_max > 180 and lon.min() < 0:
        field = field.assign_coords(lon=wrap_longitude(lon)).sortby("lon")
    step = longitude_spacing(field) or 0.0
    lat_step = float(np.abs(np.diff(field["lat"].values)).max()) if field.sizes["lat"] > 1 else 0.0
    inside = field.sel(
        lon=slice(lon_min - margin_cells * step, lon_max + margin_cells * step),
        lat=slice(lat_min - margin_cells * lat_step, lat_max + margin_cells * lat_step),
    )
    if inside.sizes["lon"] < 2 or inside.sizes["lat"] < 2:
        raise UserError(
            f"extent {extent} holds fewer than 2 x 2 grid points of "
            f"{field.name!r} (lon {float(field['lon'].min()):g} .. "
            f"{float(field['lon'].max()):g}, lat {float(field['lat'].min()):g} .. "
            f"{float(field['lat'].max()):g})"
        )
    return inside


def extent_of(field: xr.DataArray) -> Extent:
    """The box a regional field covers, cell edges included."""
    lon, lat = field["lon"].values.astype(np.float64), field["lat"].values.astype(np.float64)
    half_lon = (lon[1] - lon[0]) / 2 if len(lon) > 1 else 0.5
    half_lat = (lat[1] - lat[0]) / 2 if len(lat) > 1 else 0.5
    return (
        float(lon[0] - half_lon),
        float(lon[-1] + half_lon),
        float(max(lat[0] - half_lat, -90.0)),
        float(min(lat[-1] + half_lat, 90.0)),
    )
