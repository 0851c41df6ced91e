"""Interpolation from a coarse to a fine latitude-longitude grid: the baselines and the
network's input.

Interpolation is separable, so it is two small matrices, [fine lat, coarse lat]
and [fine lon, coarse lon], applied to the lat and lon axes of any array. Their
columns are scipy.ndimage.map_coordinates applied to unit vectors, at the fine
points' positions measured in coarse cells from cell centre to cell centre (so a
coarse value sits at the centre of the area it averages, not at a corner):

* nearest (order 0), bilinear (order 1) and bicubic (order 3, the cubic B-spline
  interpolant, as image resampling uses);
* a global coarse grid wraps around in longitude; elsewhere the field is
  extended by half-sample symmetry (scipy's ``reflect``) for the fine points that
  lie beyond the outermost coarse centres.

The other convention, ``corners``, is what ``scipy.ndimage.zoom`` does by default
(``grid_mode=False``; ``align_corners=True`` in PyTorch): it ignores where the
coarse values sit and stretches them so the first and last coarse values land on
the first and last fine points. For block means this misplaces every coarse value
but the middle ones (by up to (factor - 1) / 2 fine cells at the edges), so it is
not the network's input; it exists to reproduce published baselines computed that
way (the ERA5 sample's README figures).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.ndimage

from stmodel.data.canonical import wrap_longitude
from stmodel.errors import DataError

METHODS = {"nearest": 0, "bilinear": 1, "bicubic": 3}
ALIGNMENTS = ("centres", "corners")
# A grid whose spacing times its size is within this of 360 deg is periodic.
PERIODIC_TOLERANCE_DEG = 1e-3


def _regular_spacing(values: np.ndarray, axis_name: str, where: str) -> float:
    values = np.asarray(values, np.float64)
    if values.size < 2:
        raise DataError(
            f"{where}: the coarse grid has {values.size} {axis_name} point(s); "
            "interpolation needs at least 2"
        )
    steps = np.diff(values)
    spacing = float(np.mean(steps))
    if spacing <= 0 or np.max(np.abs(steps - spacing)) > 1e-3 * abs(spacing) + 1e-6:
        raise DataError(
            f"{where}: the coarse {axis_name} grid is not regular (spacings "
            f"{steps.min():g} to {steps.max():g} deg); expected a regular "
            "latitude-longitude grid"
        )
    return spacing


def is_periodic(lon: np.ndarray) -> bool:
    """Whether regular longitudes cover the whole circle."""
    lon = np.asarray(lon, np.float64)
    if lon.size < 2:
        return False
    spacing = float(np.mean(np.diff(lon)))
    return abs(spacing * lon.size - 360.0) < PERIODIC_TOLERANCE_DEG * lon.size


def axis_matrix(
    source: np.ndarray,
    target: np.ndarray,
    order: int,
    *,
    periodic: bool = False,
    alignment: str = "centres",
    axis_name: str = "axis",
    where: str = "<coarse grid>",
) -> np.ndarray:
    """[target, source] weights interpolating values at `source` to `target` (degrees).

    alignment ``corners`` puts the first and last source values on the first and last
    target points whatever their coordinates (scipy.ndimage.zoom's default)."""
    source = np.asarray(source, np.float64)
    target = np.asarray(target, np.float64)
    spacing = _regular_spacing(source, axis_name, where)
    if alignment == "corners":
        if target.size < 2:
            raise DataError(f"{where}: corner alignment needs at least 2 fine {axis_name} points")
        position = (target - target[0]) / (target[-1] - target[0]) * (source.size - 1)
        mode = "nearest"  # scipy.ndimage.zoom's boundary for the spline prefilter
    elif alignment != "centres":
        raise ValueError(f"unknown alignment {alignment!r}; choose one of {ALIGNMENTS}")
    elif periodic:
        position = ((target - source[0]) % 360.0) / spacing
        mode = "grid-wrap"
    else:
        # Signed offsets from the middle of the source span, so longitudes given in
        # different frames (350 and -10) land in the right place.
        middle = (source[0] + source[-1]) / 2
        offset = target - middle
        if axis_name == "longitude":
            offset = wrap_longitude(offset, -180.0)
        position = (middle - source[0] + offset) / spacing
        mode = "reflect"
    identity = np.eye(source.size)
    columns = [
        scipy.ndimage.map_coordinates(identity[k], position[None], order=order, mode=mode)
        for k in range(source.size)
    ]
    return np.stack(columns, axis=1)  # [target, source]


@dataclasses.dataclass(frozen=True)
class GridInterpolator:
    """Interpolation from one lat-lon grid to another, by one method."""

    lat_matrix: np.ndarray  # [fine lat, coarse lat]
    lon_matrix: np.ndarray  # [fine lon, coarse lon]
    method: str

    @classmethod
    def between(
        cls,
        coarse_lat: np.ndarray,
        coarse_lon: np.ndarray,
        fine_lat: np.ndarray,
        fine_lon: np.ndarray,
        method: str,
        *,
        alignment: str = "centres",
        where: str = "<coarse grid>",
    ) -> GridInterpolator:
        if method not in METHODS:
            raise ValueError(f"unknown interpolation {method!r}; choose one of {sorted(METHODS)}")
        order = METHODS[method]
        lat_matrix = axis_matrix(
            coarse_lat, fine_lat, order, alignment=alignment, axis_name="latitude", where=where
        )
        lon_matrix = axis_matrix(
            coarse_lon,
            fine_lon,
            order,
            periodic=is_periodic(coarse_lon),
            alignment=alignment,
            axis_name="longitude",
            where=where,
        )
        return cls(lat_matrix.astype(np.float32), lon_matrix.astype(np.float32), method)

    def __call__(self, field: np.ndarray, lat_axis: int) -> np.ndarray:
        """Interpolate `field` whose lat and lon axes are `lat_axis` and `lat_axis + 1`."""
        field = np.asarray(field, np.float32)
        lat_axis = lat_axis % field.ndim
        moved = np.moveaxis(field, (lat_axis, lat_axis + 1), (-2, -1))  # [..., lat, lon]
        fine = np.einsum(
            "fi,...ij,gj->...fg", self.lat_matrix, moved, self.lon_matrix, optimize=True
        )
        return np.moveaxis(fine, (-2, -1), (lat_axis, lat_axis + 1))

    def channels_last(self, field: np.ndarray) -> np.ndarray:
        """[..., lat, lon, channel] (upper-air [..., level, lat, lon, var] or surface
        [..., lat, lon, var]) -> the same on the fine grid."""
        return self(field, lat_axis=-3)
