"""Maps of an ensemble forecast: the probability of exceeding a threshold, and spaghetti
(every member's contour at one value), in the style of :func:`stmodel.plot.plot_map`."""

from __future__ import annotations

import cartopy.crs as ccrs
import matplotlib.colors as mcolors
import numpy as np
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from stmodel.data.canonical import GRAVITY
from stmodel.data.readers import describe_source
from stmodel.errors import UserError
from stmodel.evaluation.climatology import climatology_at
from stmodel.evaluation.metric_base import REALIZATION_DIM
from stmodel.plot import labels
from stmodel.plot.colours import ColourScale
from stmodel.plot.fields import (
    Extent,
    LeadChoice,
    TimeChoice,
    on_grid_of,
    pick_variable,
    select_field,
    valid_time_of,
    with_cyclic_point,
)
from stmodel.plot.maps import (
    PLATE_CARREE,
    MapKind,
    add_colour_bar,
    decorate,
    describe_when,
    draw_field,
    figure_size,
    frame_field,
    make_projection,
    new_map_axes,
)
from stmodel.plot.members import member_fields
from stmodel.plot.panels import select_truth_for

CLIMATOLOGY_TIME_DIMS = ("dayofyear", "hour")
MEMBER_COLOUR = "tab:blue"
TRUTH_COLOUR = "black"
GEOPOTENTIAL_UNITS = labels.pretty_units("m2 s-2")


def _map_axes(axes, extent: Extent | None, projection, figsize):
    """(figure, GeoAxes): the one given, or a new map as plot_map makes it."""
    if axes is not None:
        return axes.figure, axes
    figure = Figure(figsize=figsize or figure_size(extent), layout="constrained")
    map_projection = make_projection(projection, extent=extent)
    return figure, new_map_axes(figure, (1, 1, 1), map_projection, extent)


def climatology_for(
    field: xr.DataArray,
    climatology: xr.Dataset | xr.DataArray,
    variable: str | None,
    level: float | None,
) -> xr.DataArray:
    """The climatology (``stmodel data stats``'s climatology.nc: by day of year and hour,
    by hour, or a time mean) at the valid time of the forecast field ``field``, on its grid."""
    source = describe_source(climatology)
    mean = pick_variable(climatology, variable)
    if any(dim in mean.dims for dim in CLIMATOLOGY_TIME_DIMS):
        valid = valid_time_of(field)
        if valid is None:
            raise UserError(
                f"{source}: the climatology of {mean.name!r} varies with "
                f"{', '.join(d for d in CLIMATOLOGY_TIME_DIMS if d in mean.dims)}, but the "
                "forecast field has no valid time to select it by"
            )
        at_valid = xr.DataArray(np.asarray([valid], "datetime64[ns]"), dims="valid")
        mean = climatology_at(mean, at_valid, source).isel(valid=0)
    return on_grid_of(select_field(mean, level=level), field, source, "climatology")


def exceedance_probability(
    members: xr.DataArray,
    threshold: float,
    climatology: xr.DataArray | None = None,
    *,
    below: bool = False,
) -> xr.DataArray:
    """The fraction of members (dim realization) whose anomaly from ``climatology`` (None:
    the value itself) is above ``threshold`` (below it with ``below``); NaN where any
    member is NaN, since a fraction of the others would be a different probability."""
    anomaly = members if climatology is None else members - climatology
    beyond = anomaly < threshold if below else anomaly > threshold
    probability = (
        beyond.astype(np.float64).where(anomaly.notnull()).mean(REALIZATION_DIM, skipna=False)
    )
    return probability.rename("probability")


def plot_probability_map(
    forecast: xr.Dataset | xr.DataArray,
    variable: str | None,
    threshold: float,
    *,
    climatology: xr.Dataset | xr.DataArray | None = None,
    below: bool = False,
    level: float | None = None,
    time: TimeChoice | None = None,
    lead: LeadChoice | None = None,
    projection: str | ccrs.Projection | None = None,
    extent: Extent | None = None,
    kind: MapKind = "pcolormesh",
    cmap: str | None = None,
    title: str | None = None,
    coastlines: bool = True,
    borders: bool = True,
    gridlines: bool = True,
    axes: Axes | None = None,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """A map of the probability, the fraction of members, that a field's anomaly from
    ``climatology`` exceeds ``threshold`` (in the field's units), e.g.
    P(T850 anomaly > 2 K); with ``below``, that it is below it (P(anomaly < -2 K)).

    ``forecast``: an ensemble in the WeatherBench 2 layout (a ``realization`` dim);
    ``time``, ``lead``, ``level`` select one field as for :func:`stmodel.plot.plot_map`.
    ``climatology``: as ``stmodel data stats`` writes it (taken at the valid time), or a
    (lat, lon) field; None: the threshold applies to the field itself.
    """
    members = member_fields(forecast, variable, level=level, time=time, lead=lead)
    mean = None
    if climatology is not None:
        mean = climatology_for(members, climatology, str(members.name), level)
    probability = exceedance_probability(members, threshold, mean, below=below)
    probability, shown_extent = frame_field(probability, extent)
    scale = ColourScale(
        cmap or ("Blues" if below else "Reds"), mcolors.Normalize(0.0, 1.0), "neither"
    )
    figure, axes = _map_axes(axes, shown_extent, projection, figsize)
    mappable = draw_field(axes, probability, scale, kind=kind)
    decorate(axes, shown_extent, coastlines=coastlines, borders=borders, gridlines=gridlines)
    symbol = labels.field_symbol(str(members.name), labels.level_of(members))
    units = labels.pretty_units(labels.units_of(members))
    quantity = f"{symbol} anomaly" if mean is not None else symbol
    event = f"P({quantity} {'<' if below else '>'} {threshold:g}{' ' + units if units else ''})"
    add_colour_bar(figure, mappable, axes, scale, event)
    if title is None:
        count = members.sizes[REALIZATION_DIM]
        when = describe_when(members)
        title = f"{event}, {count} members" + (f"\n{when}" if when else "")
    axes.set_title(title, fontsize=10)
    return figure


def contour_value(
    field: xr.DataArray, value: float, value_units: str | None
) -> tuple[float, float, str]:
    """(``value`` in the field's units, field units per unit of ``value``, words for it).
    Geopotential is contoured at a height in metres by default (value_units "m": times
    g); otherwise ``value`` is in the field's units."""
    units = labels.pretty_units(labels.units_of(field))
    geopotential = str(field.name) == "geopotential" and units == GEOPOTENTIAL_UNITS
    value_units = value_units if value_units is not None else ("m" if geopotential else units)
    if geopotential and value_units == "m":
        return (
            value * GRAVITY,
            GRAVITY,
            f"{value:g} m geopotential height ({value * GRAVITY:,.0f} {GEOPOTENTIAL_UNITS})",
        )
    if labels.pretty_units(value_units) == units:
        return value, 1.0, f"{value:g} {units}".rstrip()
    expected = "'m' (geopotential height) or 'm2 s-2'" if geopotential else None
    raise UserError(
        f"value_units={value_units!r} for the contour of {field.name!r}: expected "
        f"{expected or repr(units) + ', its units'}"
    )


def _contour(axes, field: xr.DataArray, value: float, colour: str, width: float, gid: str):
    shown = with_cyclic_point(field)  # lines across the last longitude and 360 join up
    lines = axes.contour(
        shown["lon"].values,
        shown["lat"].values,
        shown.values,
        levels=[value],
        colors=colour,
        linewidths=width,
        transform=PLATE_CARREE,
    )
    lines.set_gid(gid)
    return lines


def plot_spaghetti(
    forecast: xr.Dataset | xr.DataArray,
    variable: str | None,
    value: float,
    *,
    value_units: str | None = None,
    level: float | None = None,
    time: TimeChoice | None = None,
    lead: LeadChoice | None = None,
    truth: xr.Dataset | xr.DataArray | None = None,
    projection: str | ccrs.Projection | None = None,
    extent: Extent | None = None,
    title: str | None = None,
    coastlines: bool = True,
    borders: bool = False,
    gridlines: bool = True,
    axes: Axes | None = None,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Spaghetti: every member's contour of one field at ``value``, e.g. Z500 at 5,500 m,
    and, when ``truth`` (canonical data) is given, the truth's at the same valid time.

    Geopotential ``value`` is a geopotential height in metres (contoured at value x g m²
    s⁻²) unless ``value_units="m2 s-2"``; other fields' ``value`` is in their units.
    ``forecast``, ``time``, ``lead``, ``level`` as for :func:`plot_probability_map`.
    """
    members = member_fields(forecast, variable, level=level, time=time, lead=lead)
    contour_at, factor, described = contour_value(members, value, value_units)
    name = variable if variable is not None else str(members.name)
    truth_field = None
    if truth is not None:
        truth_field = select_truth_for(
            members.isel({REALIZATION_DIM: 0}), truth, name, level=level, time=time
        )
    members, shown_extent = frame_field(members, extent)
    low, high = members.min(["lat", "lon"]), members.max(["lat", "lon"])  # [realization]
    if not ((low < contour_at) & (contour_at < high)).any():
        raise UserError(
            f"{describe_source(forecast)}: no member's {name!r} crosses {described}: the "
            f"members span {float(low.min()) / factor:.6g} .. {float(high.max()) / factor:.6g}"
            f" in those units{' inside the extent' if extent is not None else ''}"
        )
    figure, axes = _map_axes(axes, shown_extent, projection, figsize)
    decorate(
        axes,
        shown_extent,
        coastlines=coastlines,
        borders=borders,
        gridlines=gridlines,
        outline_colour="0.45",
    )
    count = members.sizes[REALIZATION_DIM]
    for member in range(count):
        field = members.isel({REALIZATION_DIM: member})
        _contour(axes, field, contour_at, MEMBER_COLOUR, 0.8, "member")
    handles = [Line2D([], [], color=MEMBER_COLOUR, linewidth=0.8, label=f"members ({count})")]
    if truth_field is not None:
        truth_field, _ = frame_field(truth_field, shown_extent)
        _contour(axes, truth_field, contour_at, TRUTH_COLOUR, 1.8, "truth")
        handles.append(Line2D([], [], color=TRUTH_COLOUR, linewidth=1.8, label="truth"))
    axes.legend(handles=handles, loc="lower left", fontsize=8, framealpha=0.8)
    if title is None:
        symbol = labels.field_symbol(name, labels.level_of(members))
        when = describe_when(members)
        title = f"{symbol} = {described}" + (f"\n{when}" if when else "")
    axes.set_title(title, fontsize=10)
    return figure
