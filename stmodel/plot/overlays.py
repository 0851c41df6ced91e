"""Lines over colour: geopotential contours over temperature, wind vectors or streamlines."""

from __future__ import annotations

import contextlib
from typing import Literal

import cartopy.crs as ccrs
import numpy as np
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from stmodel.data.canonical import GRAVITY
from stmodel.data.readers import describe_source
from stmodel.errors import UserError
from stmodel.plot import labels
from stmodel.plot.colours import field_scale
from stmodel.plot.fields import (
    Extent,
    centred_on,
    is_global,
    select_field,
    with_cyclic_point,
)
from stmodel.plot.maps import (
    PLATE_CARREE,
    MapKind,
    add_colour_bar,
    central_longitude_of,
    decorate,
    describe_when,
    draw_field,
    figure_size,
    frame_field,
    make_projection,
    new_map_axes,
)

# Contour lines in the units forecasters read: geopotential in decametres of
# height, pressure in hPa; with the customary spacing.
CONTOUR_UNITS = {
    "geopotential": ("dam", 1.0 / (GRAVITY * 10.0), 6.0),
    "mean_sea_level_pressure": ("hPa", 0.01, 4.0),
    "surface_pressure": ("hPa", 0.01, 10.0),
}
# Outside this many lines the customary spacing is replaced by an automatic one.
MIN_CONTOURS, MAX_CONTOURS = 4, 40
AUTOMATIC_CONTOURS = 12

WindKind = Literal["quiver", "streamlines"]
# Arrows along the shorter side of the map (cartopy regrids vectors in map space).
ARROWS_ACROSS = 22
# Source points along the longer side kept for regridding vectors.
VECTOR_SOURCE_POINTS = 120
WIND_COMPONENTS = {
    "upper": ("u_component_of_wind", "v_component_of_wind", "wind_speed"),
    "surface": ("10m_u_component_of_wind", "10m_v_component_of_wind", "10m_wind_speed"),
}


def contour_levels(values: np.ndarray, interval: float | None) -> np.ndarray:
    """Contour values every ``interval`` (aligned on multiples of it), else automatic."""
    low, high = float(np.nanmin(values)), float(np.nanmax(values))
    if interval is not None and interval > 0:
        levels = np.arange(np.ceil(low / interval), np.floor(high / interval) + 1) * interval
        if MIN_CONTOURS <= len(levels) <= MAX_CONTOURS:
            return levels
    return MaxNLocator(AUTOMATIC_CONTOURS).tick_values(low, high)


def contour_field_in_display_units(field: xr.DataArray) -> tuple[xr.DataArray, str, float | None]:
    """(field converted for contour labels, units text, customary interval)."""
    name = str(field.name)
    if name in CONTOUR_UNITS:
        units, factor, interval = CONTOUR_UNITS[name]
        return field * factor, units, interval
    return field, labels.pretty_units(labels.units_of(field)), None


def draw_contours(
    axes, field: xr.DataArray, *, interval: float | None = None, colour: str = "black"
) -> str:
    """Labelled contour lines of a field; returns a description like "Z500 every 6 dam"."""
    shown, units, customary = contour_field_in_display_units(field)
    shown = with_cyclic_point(shown)  # contours across the last longitude and 360 join up
    levels = contour_levels(shown.values, customary if interval is None else interval)
    lines = axes.contour(
        shown["lon"].values,
        shown["lat"].values,
        shown.values,
        levels=levels,
        colors=colour,
        linewidths=0.8,
        transform=PLATE_CARREE,
    )
    axes.clabel(lines, fmt="%g", fontsize=7, inline=True)
    step = float(levels[1] - levels[0]) if len(levels) > 1 else float("nan")
    symbol = labels.field_symbol(str(field.name), labels.level_of(field))
    return f"{symbol} every {step:g} {units}".rstrip()


def plot_contours_over_colour(
    colour_data: xr.Dataset | xr.DataArray,
    contour_data: xr.Dataset | xr.DataArray | None = None,
    *,
    colour_variable: str | None = None,
    colour_level: float | None = None,
    contour_variable: str | None = None,
    contour_level: float | None = None,
    time=None,
    lead=None,
    contour_interval: float | None = None,
    projection: str | ccrs.Projection | None = None,
    extent: Extent | None = None,
    kind: MapKind = "pcolormesh",
    cmap: str | None = None,
    vmin: float | None = None,
    vmax: float | None = None,
    coastlines: bool = True,
    borders: bool = False,
    gridlines: bool = True,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """One field in colour with another as labelled contours, e.g. T850 colour, Z500 lines.

    ``contour_data`` defaults to ``colour_data``. Geopotential contours are in
    dam (every 6 by default), pressure in hPa; ``contour_interval`` is in
    those display units.
    """
    contour_data = colour_data if contour_data is None else contour_data
    colour = select_field(colour_data, colour_variable, level=colour_level, time=time, lead=lead)
    lines = select_field(contour_data, contour_variable, level=contour_level, time=time, lead=lead)
    colour, shown_extent = frame_field(colour, extent)
    lines, _ = frame_field(lines, shown_extent)
    scale = field_scale([colour.values], str(colour.name), vmin=vmin, vmax=vmax, cmap=cmap)
    figure = Figure(figsize=figsize or figure_size(shown_extent), layout="constrained")
    axes = new_map_axes(
        figure, (1, 1, 1), make_projection(projection, extent=shown_extent), shown_extent
    )
    mesh = draw_field(axes, colour, scale, kind=kind)
    decorate(
        axes,
        shown_extent,
        coastlines=coastlines,
        borders=borders,
        gridlines=gridlines,
        outline_colour="0.25",
    )
    described = draw_contours(axes, lines, interval=contour_interval)
    add_colour_bar(figure, mesh, axes, scale, labels.field_label(colour))
    colour_symbol = labels.field_symbol(str(colour.name), labels.level_of(colour))
    when = describe_when(colour)
    axes.set_title(
        f"{colour_symbol} (colour), {described} (contours)" + (f"\n{when}" if when else ""),
        fontsize=10,
    )
    return figure


def single_threaded_blas():
    """A context in which BLAS/LAPACK use one thread, when threadpoolctl is installed.

    cartopy regrids vectors with scipy's Delaunay interpolation, which makes
    one tiny LAPACK call per triangle; with multi-threaded OpenBLAS on a busy
    machine each call waits on idle threads: measured 0.08 s single-threaded
    against 0.5-8 s multi-threaded for 2,000 points on 2 shared cores.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _wind_names(
    data: xr.Dataset | xr.DataArray,
    level: float | None,
    u_variable: str | None,
    v_variable: str | None,
) -> tuple[str, str, str]:
    if u_variable and v_variable:
        return u_variable, v_variable, "wind_speed" if level is not None else "10m_wind_speed"
    if not isinstance(data, xr.Dataset):
        raise UserError(
            "plot_wind needs a Dataset holding both wind components "
            "(or u_variable= and v_variable= naming them)"
        )
    kind = "upper" if level is not None else "surface"
    u_name, v_name, speed_name = WIND_COMPONENTS[kind]
    if u_name not in data.data_vars or v_name not in data.data_vars:
        raise UserError(
            f"{describe_source(data)}: no {u_name} and {v_name} to draw "
            f"{'level ' + str(level) + ' hPa' if level is not None else 'surface'} "
            f"wind; it has {', '.join(data.data_vars)}"
        )
    return u_name, v_name, speed_name


def plot_wind(
    data: xr.Dataset,
    *,
    level: float | None = None,
    time=None,
    lead=None,
    kind: WindKind = "quiver",
    u_variable: str | None = None,
    v_variable: str | None = None,
    projection: str | ccrs.Projection | None = None,
    extent: Extent | None = None,
    cmap: str | None = None,
    coastlines: bool = True,
    borders: bool = False,
    gridlines: bool = True,
    arrows_across: int = ARROWS_ACROSS,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Wind speed in colour with vectors (``kind="quiver"``) or streamlines on top.

    With ``level`` the upper-air components (u/v_component_of_wind), without it
    the 10 m ones. Vectors are regridded in map space by cartopy, so arrows are
    evenly spaced and point the right way in any projection.
    """
    u_name, v_name, speed_name = _wind_names(data, level, u_variable, v_variable)
    u = select_field(data, u_name, level=level, time=time, lead=lead)
    v = select_field(data, v_name, level=level, time=time, lead=lead)
    speed = np.hypot(u, v).rename(speed_name)
    speed.attrs = {"units": labels.units_of(u), "long_name": speed_name.replace("_", " ")}
    speed, shown_extent = frame_field(speed, extent)
    u, _ = frame_field(u, shown_extent)
    v, _ = frame_field(v, shown_extent)
    scale = field_scale([speed.values], speed_name, cmap=cmap)
    figure = Figure(figsize=figsize or figure_size(shown_extent), layout="constrained")
    axes = new_map_axes(
        figure, (1, 1, 1), make_projection(projection, extent=shown_extent), shown_extent
    )
    mesh = draw_field(axes, speed, scale)
    decorate(
        axes,
        shown_extent,
        coastlines=coastlines,
        borders=borders,
        gridlines=gridlines,
        outline_colour="0.25",
    )
    # cartopy triangulates every source point to regrid vectors onto the map:
    # a grid a few times finer than the arrows is plenty, and much faster.
    stride = max(1, int(np.ceil(max(u.sizes["lat"], u.sizes["lon"]) / VECTOR_SOURCE_POINTS)))
    global_wind = is_global(u)
    u, v = (
        u.isel(lat=slice(None, None, stride), lon=slice(None, None, stride)),
        v.isel(lat=slice(None, None, stride), lon=slice(None, None, stride)),
    )
    if global_wind:
        centre = central_longitude_of(axes)
        u, v = centred_on(u, centre), centred_on(v, centre)
    lon, lat = u["lon"].values, u["lat"].values
    if kind == "quiver":
        with single_threaded_blas():
            arrows = axes.quiver(
                lon,
                lat,
                u.values,
                v.values,
                transform=PLATE_CARREE,
                regrid_shape=arrows_across,
                color="black",
                width=0.0025,
                zorder=4,
            )
        reference = _reference_speed(speed.values)
        axes.quiverkey(
            arrows,
            0.92,
            1.02,
            reference,
            f"{reference:g} {labels.pretty_units(labels.units_of(u))}",
            labelpos="E",
            coordinates="axes",
            fontproperties={"size": 8},
        )
    elif kind == "streamlines":
        with single_threaded_blas():
            axes.streamplot(
                lon,
                lat,
                u.values,
                v.values,
                transform=PLATE_CARREE,
                density=arrows_across / 14,
                color="black",
                linewidth=0.6,
                arrowsize=0.8,
                zorder=4,
            )
    else:
        raise UserError(f"unknown wind kind {kind!r}; expected 'quiver' or 'streamlines'")
    add_colour_bar(figure, mesh, axes, scale, labels.field_label(speed))
    when = describe_when(speed)
    symbol = labels.field_symbol(speed_name, level)
    drawn = "vectors" if kind == "quiver" else "streamlines"
    axes.set_title(f"{symbol}: wind speed and {drawn}" + (f"\n{when}" if when else ""), fontsize=10)
    return figure


def _reference_speed(speed: np.ndarray) -> float:
    """A round speed for the arrow key, near the 90th percentile of the field."""
    typical = float(np.nanpercentile(speed, 90))
    if typical <= 0:
        return 1.0
    magnitude = 10 ** np.floor(np.log10(typical))
    for step in (1, 2, 5, 10):
        if step * magnitude >= typical:
            return float(step * magnitude)
    return float(10 * magnitude)
