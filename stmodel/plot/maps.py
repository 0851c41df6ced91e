"""One field on a map: projections, regional zoom, no seam, offline coastlines, labelled colour bar.

Figures are made with ``matplotlib.figure.Figure`` rather than pyplot, so
nothing is shown or kept open behind the caller's back: in a notebook, make a
figure the last expression of a cell (or ``display(figure)``) to see it, and
save it with :func:`stmodel.plot.save_figure`.
"""

from __future__ import annotations

from typing import Literal

import cartopy.crs as ccrs
import matplotlib.path as mpath
import numpy as np
import xarray as xr
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from stmodel.errors import UserError
from stmodel.plot import labels
from stmodel.plot.colours import ColourScale, field_scale
from stmodel.plot.fields import (
    Extent,
    centred_on,
    extent_of,
    is_global,
    lead_of,
    select_field,
    valid_time_of,
    with_cyclic_point,
    zoom,
)
from stmodel.plot.offline_features import add_coastlines_and_borders

PLATE_CARREE = ccrs.PlateCarree()
PROJECTION_NAMES = (
    "PlateCarree",
    "Robinson",
    "LambertConformal",
    "Orthographic",
    "NorthPolarStereo",
    "SouthPolarStereo",
    "Mercator",
)
MapKind = Literal["pcolormesh", "contourf"]
# Number of colour bands of filled contours.
CONTOURF_BANDS = 16
_EDGE_INSET_DEGREES = 1e-6
# An extent at least this wide in longitude goes all the way round.
FULL_CIRCLE_DEGREES = 359.0
POLAR_PROJECTIONS = (
    ccrs.NorthPolarStereo,
    ccrs.SouthPolarStereo,
    ccrs.Orthographic,
    ccrs.AzimuthalEquidistant,
    ccrs.LambertAzimuthalEqualArea,
)


def make_projection(
    projection: str | ccrs.Projection | None = None, *, extent: Extent | None = None
) -> ccrs.Projection:
    """A cartopy projection by name (see PROJECTION_NAMES) or as given.

    None picks Robinson for global maps and a Lambert conformal conic centred
    on the region for regional ones (``extent`` given).
    """
    if isinstance(projection, ccrs.Projection):
        return projection
    if projection is None:
        projection = "Robinson" if extent is None else "LambertConformal"
    names = {name.lower(): name for name in PROJECTION_NAMES}
    if projection.lower() not in names:
        raise UserError(
            f"unknown map projection {projection!r}; expected one of "
            f"{', '.join(PROJECTION_NAMES)} or a cartopy.crs.Projection"
        )
    name = names[projection.lower()]
    centre_lon = 0.0 if extent is None else (extent[0] + extent[1]) / 2
    centre_lat = 0.0 if extent is None else (extent[2] + extent[3]) / 2
    if name == "LambertConformal":
        if extent is None:
            raise UserError(
                "a LambertConformal map needs a regional extent "
                "(lon_min, lon_max, lat_min, lat_max)"
            )
        # Standard parallels at 1/6 and 5/6 of the box keep scale error small inside it.
        span = extent[3] - extent[2]
        parallels = (extent[2] + span / 6, extent[3] - span / 6)
        if parallels[0] * parallels[1] <= 0:
            # A box across the equator has no cone that fits it: use the plain grid.
            return ccrs.PlateCarree(central_longitude=centre_lon)
        # The cone opens away from its pole: cut the map off on the far side.
        cutoff = -30 if centre_lat >= 0 else 30
        return ccrs.LambertConformal(
            central_longitude=centre_lon,
            central_latitude=centre_lat,
            standard_parallels=parallels,
            cutoff=cutoff,
        )
    if name == "Orthographic":
        return ccrs.Orthographic(central_longitude=centre_lon, central_latitude=centre_lat)
    return getattr(ccrs, name)(central_longitude=centre_lon)


def frame_field(field: xr.DataArray, extent: Extent | None) -> tuple[xr.DataArray, Extent | None]:
    """The field cut to the map and the extent to show (None: the whole globe)."""
    if extent is not None:
        return zoom(field, extent), tuple(float(value) for value in extent)
    if is_global(field):
        return field, None
    return field, extent_of(field)


def new_map_axes(
    figure: Figure,
    position: tuple[int, int, int],
    projection: ccrs.Projection,
    extent: Extent | None,
):
    """A GeoAxes at subplot ``position`` (rows, columns, index) showing ``extent`` or the globe."""
    axes = figure.add_subplot(*position, projection=projection)
    if extent is None:
        axes.set_global()
        return axes
    axes.set_extent(extent, crs=PLATE_CARREE)
    if extent[1] - extent[0] >= FULL_CIRCLE_DEGREES:
        if isinstance(projection, POLAR_PROJECTIONS):
            # A cap around the pole: a round map, not the square around it.
            angle = np.linspace(0.0, 2.0 * np.pi, 181)
            circle = np.column_stack([np.sin(angle), np.cos(angle)]) * 0.5 + 0.5  # [181, 2]
            axes.set_boundary(mpath.Path(circle), transform=axes.transAxes)
    else:
        # Bound the map by the lat/lon box itself: in a conic projection the box is a
        # curved wedge, and a rectangular frame would leave empty corners.
        axes.set_boundary(box_outline(extent), transform=PLATE_CARREE)
    return axes


def box_outline(extent: Extent, points_per_side: int = 64) -> mpath.Path:
    """Closed path along the edges of a lat/lon box, dense enough to curve when projected."""
    lon_min, lon_max, lat_min, lat_max = extent
    along_lon = np.linspace(lon_min, lon_max, points_per_side)
    along_lat = np.linspace(lat_min, lat_max, points_per_side)
    lon = np.concatenate(
        [
            along_lon,
            np.full(points_per_side, lon_max),
            along_lon[::-1],
            np.full(points_per_side, lon_min),
        ]
    )
    lat = np.concatenate(
        [
            np.full(points_per_side, lat_min),
            along_lat,
            np.full(points_per_side, lat_max),
            along_lat[::-1],
        ]
    )
    return mpath.Path(np.column_stack([lon, lat]), closed=True)  # [4 * points_per_side, 2]


def cell_edges(field: xr.DataArray) -> tuple[np.ndarray, np.ndarray]:
    """Longitude and latitude cell edges (midpoints; latitudes clipped to the poles).

    For a global field the longitude edges span the full 360 degrees, so a
    pcolormesh leaves no gap at the dateline or the Greenwich meridian.
    """

    def edges(centres: np.ndarray) -> np.ndarray:
        if len(centres) == 1:
            return np.array([centres[0] - 0.5, centres[0] + 0.5])
        middle = (centres[:-1] + centres[1:]) / 2
        return np.concatenate(
            [[2 * centres[0] - middle[0]], middle, [2 * centres[-1] - middle[-1]]]
        )

    lon = edges(field["lon"].values.astype(np.float64))
    lat = np.clip(edges(field["lat"].values.astype(np.float64)), -90.0, 90.0)
    return lon, lat


def global_cells(
    field: xr.DataArray, central_longitude: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cell edges and values of a global field laid out from the map's left edge to its right.

    Longitudes are rolled into [c - 180, c + 180] for the map's central
    longitude c, with the last column repeated before the first and the first
    after the last (cyclic points on both sides), and the outer edges cut at
    the map edge: the cells cover the map exactly and none straddles its
    boundary, so cartopy need not split cells there (slow) and there is no
    gap or seam at 0 deg or 180 deg.
    """
    west = central_longitude - 180.0
    rolled = centred_on(field, central_longitude)  # [lat, lon + 1], first column repeated last
    last = rolled.isel(lon=[-2])  # the last real column, repeated before the first
    wrapped = xr.concat(
        [last.assign_coords(lon=last["lon"].values - 360.0), rolled], dim="lon"
    )  # [lat, lon + 2]
    lon_edges, lat_edges = cell_edges(wrapped)
    # A hair inside the edge: exactly c +- 180 may project to either side of the map.
    lon_edges = np.clip(lon_edges, west + _EDGE_INSET_DEGREES, west + 360.0 - _EDGE_INSET_DEGREES)
    return lon_edges, lat_edges, wrapped.values


def central_longitude_of(axes) -> float:
    """The central meridian of a GeoAxes' projection (0 when it has none)."""
    return float(axes.projection.proj4_params.get("lon_0", 0.0))


def draw_field(axes, field: xr.DataArray, scale: ColourScale, *, kind: MapKind = "pcolormesh"):
    """Colour a (lat, lon) field on a GeoAxes; returns the mappable for a colour bar."""
    if kind == "pcolormesh":
        if is_global(field):
            lon_edges, lat_edges, values = global_cells(field, central_longitude_of(axes))
        else:
            (lon_edges, lat_edges), values = cell_edges(field), field.values
        return axes.pcolormesh(
            lon_edges,
            lat_edges,
            values,
            cmap=scale.cmap,
            norm=scale.norm,
            shading="flat",
            transform=PLATE_CARREE,
            rasterized=True,
        )
    if kind == "contourf":
        # Contours interpolate between columns: the first column repeated at +360
        # closes the gap between the last longitude and 360.
        field = with_cyclic_point(field)
        bands = MaxNLocator(CONTOURF_BANDS).tick_values(scale.norm.vmin, scale.norm.vmax)
        return axes.contourf(
            field["lon"].values,
            field["lat"].values,
            field.values,
            levels=bands,
            cmap=scale.cmap,
            norm=scale.norm,
            extend=scale.extend,
            transform=PLATE_CARREE,
        )
    raise UserError(f"unknown map kind {kind!r}; expected 'pcolormesh' or 'contourf'")


def decorate(
    axes,
    extent: Extent | None,
    *,
    coastlines: bool = True,
    borders: bool = True,
    gridlines: bool = True,
    outline_colour: str = "black",
) -> None:
    """Offline coastlines/borders and labelled grid lines."""
    if coastlines:
        add_coastlines_and_borders(axes, extent=extent, draw_borders=borders, colour=outline_colour)
    if gridlines:
        # Labels on the frame, never inside the map where they hide the field.
        lines = axes.gridlines(
            draw_labels=True,
            x_inline=False,
            y_inline=False,
            linewidth=0.4,
            color="0.4",
            alpha=0.6,
            linestyle=":",
        )
        lines.top_labels = False
        lines.right_labels = False
        lines.xlabel_style = lines.ylabel_style = {"size": 7}


def add_colour_bar(
    figure: Figure,
    mappable,
    axes,
    scale: ColourScale,
    label: str,
    *,
    orientation: str = "horizontal",
):
    """A colour bar under (or beside) the map, labelled with name and units."""
    return figure.colorbar(
        mappable,
        ax=axes,
        orientation=orientation,
        label=label,
        extend=scale.extend,
        shrink=0.85,
        pad=0.06 if orientation == "horizontal" else 0.03,
        aspect=35,
    )


def describe_when(field: xr.DataArray) -> str:
    """ "init 2020-01-01 00:00 UTC +72 h (3 d), valid 2020-01-04 00:00 UTC", or the valid time."""
    lead = lead_of(field)
    valid = valid_time_of(field)
    if lead is not None and valid is not None:
        return (
            f"init {labels.format_time(field['time'].values)} {labels.format_lead(lead)}, "
            f"valid {labels.format_time(valid)}"
        )
    if valid is not None:
        return labels.format_time(valid)
    return ""


def default_title(field: xr.DataArray) -> str:
    when = describe_when(field)
    symbol = labels.field_symbol(
        str(field.name) if field.name is not None else None, labels.level_of(field)
    )
    head = f"{symbol}: {labels.long_description(field)}"
    return f"{head}\n{when}" if when else head


def figure_size(extent: Extent | None, columns: int = 1, rows: int = 1) -> tuple[float, float]:
    """Room for ``columns`` x ``rows`` maps with their colour bars (inches)."""
    single = columns == 1 and rows == 1
    if extent is None:
        # Robinson and PlateCarree world maps are about twice as wide as tall.
        width, height = (7.5, 4.8) if single else (5.2, 4.4)
    else:
        width = 6.0 if single else 4.6
        lon_span = extent[1] - extent[0]
        lat_span = extent[3] - extent[2]
        aspect = lat_span / max(lon_span * np.cos(np.deg2rad((extent[2] + extent[3]) / 2)), 1e-6)
        height = float(np.clip(width * aspect, 0.5 * width, 1.4 * width)) + 1.4
    return (width * columns, height * rows)


def plot_map(
    data: xr.Dataset | xr.DataArray,
    variable: str | None = None,
    *,
    level: float | None = None,
    time=None,
    lead=None,
    projection: str | ccrs.Projection | None = None,
    extent: Extent | None = None,
    kind: MapKind = "pcolormesh",
    cmap: str | None = None,
    vmin: float | None = None,
    vmax: float | None = None,
    title: str | None = None,
    coastlines: bool = True,
    borders: bool = True,
    gridlines: bool = True,
    axes=None,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Map one field (any variable, level, time, lead) with a labelled colour bar.

    ``extent`` (lon_min, lon_max, lat_min, lat_max) zooms to a region; a
    regional field is framed to its own box. Pass ``axes`` (a cartopy GeoAxes)
    to draw into an existing figure; otherwise a new Figure is returned.
    """
    field, extent = frame_field(
        select_field(data, variable, level=level, time=time, lead=lead), extent
    )
    scale = field_scale([field.values], str(field.name), vmin=vmin, vmax=vmax, cmap=cmap)
    if axes is None:
        figure = Figure(figsize=figsize or figure_size(extent), layout="constrained")
        axes = new_map_axes(figure, (1, 1, 1), make_projection(projection, extent=extent), extent)
    else:
        figure = axes.figure
    mappable = draw_field(axes, field, scale, kind=kind)
    decorate(axes, extent, coastlines=coastlines, borders=borders, gridlines=gridlines)
    add_colour_bar(figure, mappable, axes, scale, labels.field_label(field))
    axes.set_title(default_title(field) if title is None else title, fontsize=10)
    return figure
