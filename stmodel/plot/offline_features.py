"""Coastlines and country borders from bundled Natural Earth outlines: no network.

cartopy's ``ax.coastlines()`` and ``cartopy.feature.BORDERS`` download Natural
Earth shapefiles on first use, which fails on machines without internet. We
ship Natural Earth 1:110m and 1:50m Admin 0 countries as TopoJSON (see
natural_earth/NOTICE.txt) and take both line sets from its topology: an arc
used by the merged ``land`` object is coastline, an arc shared by two countries
is a border. The features are plain cartopy ShapelyFeatures, so they project
like any other cartopy feature.
"""

from __future__ import annotations

import functools
import gzip
import json
from importlib import resources
from typing import Literal

import cartopy.crs as ccrs
import cartopy.feature as cfeature
import numpy as np
import shapely

from stmodel.errors import UserError

Resolution = Literal["110m", "50m"]
RESOLUTIONS: tuple[Resolution, ...] = ("110m", "50m")

# A map narrower than this (degrees of longitude) gets the 1:50m outlines.
REGIONAL_SPAN_DEGREES = 90.0
# Lines are kept this far beyond a regional map's box: conic maps bulge past it.
CLIP_MARGIN_DEGREES = 10.0

# Natural Earth cuts polygons at the antimeridian and closes Antarctica along
# the pole; those edges are not coastlines and would draw as seams.
_ANTIMERIDIAN = 180.0
_SOUTH_POLE = -90.0
_EDGE_TOLERANCE_DEGREES = 1e-3

_DATA_PACKAGE = "stmodel.plot"
_DATA_FOLDER = "natural_earth"


def _topology_file(resolution: Resolution):
    if resolution not in RESOLUTIONS:
        raise ValueError(f"resolution must be one of {RESOLUTIONS}, not {resolution!r}")
    return resources.files(_DATA_PACKAGE) / _DATA_FOLDER / f"countries-{resolution}.json.gz"


def _decode_arcs(topology: dict) -> list[np.ndarray]:
    """Quantised, delta-encoded TopoJSON arcs -> [n_points, 2] arrays of (lon, lat)."""
    scale = np.asarray(topology["transform"]["scale"], np.float64)
    translate = np.asarray(topology["transform"]["translate"], np.float64)
    return [
        np.cumsum(np.asarray(arc, np.float64), axis=0) * scale + translate
        for arc in topology["arcs"]
    ]


def _arc_indices(geometry: dict) -> list[int]:
    """Every arc index a Polygon or MultiPolygon uses; a negative index ~i is arc i reversed."""
    if geometry["type"] == "Polygon":
        rings = geometry["arcs"]
    elif geometry["type"] == "MultiPolygon":
        rings = [ring for polygon in geometry["arcs"] for ring in polygon]
    else:
        return []
    return [index if index >= 0 else ~index for ring in rings for index in ring]


def _without_artificial_edges(points: np.ndarray) -> list[np.ndarray]:
    """Split a [n_points, 2] line where it runs along the antimeridian or the south pole,
    or jumps across the antimeridian (TopoJSON arcs may go from +180 to -180)."""
    on_antimeridian = np.abs(np.abs(points[:, 0]) - _ANTIMERIDIAN) < _EDGE_TOLERANCE_DEGREES
    on_pole = points[:, 1] - _SOUTH_POLE < _EDGE_TOLERANCE_DEGREES
    # [n_points - 1]: a segment is artificial when both its ends lie on the same edge.
    artificial = (
        (on_antimeridian[:-1] & on_antimeridian[1:])
        | (on_pole[:-1] & on_pole[1:])
        | (np.abs(np.diff(points[:, 0])) > _ANTIMERIDIAN)
    )
    if not artificial.any():
        return [points]
    pieces, start = [], 0
    for segment in np.flatnonzero(artificial):
        if segment > start:  # points start..segment form a line of at least 2 points
            pieces.append(points[start : segment + 1])
        start = segment + 1
    if len(points) - start > 1:
        pieces.append(points[start:])
    return pieces


@functools.cache
def outline_lines(resolution: Resolution) -> dict[str, shapely.MultiLineString]:
    """Coastlines and borders at one resolution, in degrees (lon -180..180, lat).

    Returns ``{"coastlines": MultiLineString, "borders": MultiLineString}``.
    """
    source = _topology_file(resolution)
    try:
        with source.open("rb") as stream:
            topology = json.loads(gzip.decompress(stream.read()))
    except FileNotFoundError as error:
        raise UserError(
            f"{source}: stmodel's bundled Natural Earth outlines are missing; "
            "reinstall stmodel (its package data was not installed)"
        ) from error
    arcs = _decode_arcs(topology)
    land_arcs = {
        index
        for geometry in topology["objects"]["land"]["geometries"]
        for index in _arc_indices(geometry)
    }
    uses_by_countries = np.zeros(len(arcs), np.int64)
    for geometry in topology["objects"]["countries"]["geometries"]:
        np.add.at(uses_by_countries, _arc_indices(geometry), 1)
    border_arcs = set(np.flatnonzero(uses_by_countries == 2).tolist()) - land_arcs
    lines = {}
    for name, chosen in (("coastlines", land_arcs), ("borders", border_arcs)):
        pieces = [
            piece for index in sorted(chosen) for piece in _without_artificial_edges(arcs[index])
        ]
        lines[name] = shapely.MultiLineString(pieces)
    return lines


def resolution_for_extent(extent: tuple[float, float, float, float] | None) -> Resolution:
    """1:50m outlines for regional maps, 1:110m for global ones (None = global)."""
    if extent is None:
        return "110m"
    lon_min, lon_max, _, _ = extent
    return "50m" if abs(lon_max - lon_min) < REGIONAL_SPAN_DEGREES else "110m"


def _lines_within(
    lines: shapely.MultiLineString, extent: tuple[float, float, float, float] | None
) -> list:
    """The lines clipped to extent (plus a margin), so a regional map projects few points."""
    if extent is None:
        return list(lines.geoms)
    lon_min, lon_max, lat_min, lat_max = extent
    margin = CLIP_MARGIN_DEGREES
    boxes = [(lon_min - margin, lat_min - margin, lon_max + margin, lat_max + margin)]
    # The outlines use lon -180..180; a box given in 0..360 (or beyond) is cut there too.
    for shift in (-360.0, 360.0):
        boxes.append(
            (lon_min - margin + shift, lat_min - margin, lon_max + margin + shift, lat_max + margin)
        )
    clipped = []
    for box in boxes:
        part = shapely.clip_by_rect(lines, *box)
        clipped.extend(getattr(part, "geoms", [part]) if not part.is_empty else [])
    return [line for line in clipped if not line.is_empty]


def coastlines(
    resolution: Resolution = "110m",
    *,
    extent: tuple[float, float, float, float] | None = None,
    **style,
) -> cfeature.ShapelyFeature:
    """Natural Earth coastlines as a cartopy feature (default: thin black lines).

    With ``extent`` (lon_min, lon_max, lat_min, lat_max) only the lines near it are kept.
    """
    style = {"edgecolor": "black", "facecolor": "none", "linewidth": 0.6, **style}
    return cfeature.ShapelyFeature(
        _lines_within(outline_lines(resolution)["coastlines"], extent), ccrs.PlateCarree(), **style
    )


def borders(
    resolution: Resolution = "110m",
    *,
    extent: tuple[float, float, float, float] | None = None,
    **style,
) -> cfeature.ShapelyFeature:
    """Natural Earth land borders between countries as a cartopy feature."""
    style = {
        "edgecolor": "black",
        "facecolor": "none",
        "linewidth": 0.35,
        "linestyle": (0, (4, 2)),
        **style,
    }
    return cfeature.ShapelyFeature(
        _lines_within(outline_lines(resolution)["borders"], extent), ccrs.PlateCarree(), **style
    )


def add_coastlines_and_borders(
    axes,
    *,
    resolution: Resolution | Literal["auto"] = "auto",
    extent: tuple[float, float, float, float] | None = None,
    draw_borders: bool = True,
    colour: str = "black",
) -> None:
    """Draw coastlines (and borders) on a cartopy GeoAxes without touching the network.

    ``extent`` (lon_min, lon_max, lat_min, lat_max) is the region shown (None:
    the globe). ``resolution="auto"`` picks 1:50m when it spans less than 90
    degrees of longitude, else 1:110m.
    """
    if resolution == "auto":
        resolution = resolution_for_extent(extent)
    axes.add_feature(coastlines(resolution, extent=extent, edgecolor=colour), zorder=3)
    if draw_borders:
        axes.add_feature(borders(resolution, extent=extent, edgecolor=colour), zorder=3)
