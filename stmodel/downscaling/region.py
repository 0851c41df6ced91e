"""Latitude-longitude boxes, including boxes that cross the 0 deg meridian.

A box is given as ``LAT0,LAT1,LON0,LON1``: latitudes south to north, longitudes
from the western to the eastern edge, going east. ``-10,2`` and ``350,2`` are the
same box over the British Isles; ``0,90`` is a quarter of the globe east of
Greenwich. Edges are inclusive.

Selected data keep the canonical convention for regional grids: longitudes
contiguous and ascending, in [0, 360) unless the selection crosses 0 deg, when
those west of it are negative (e.g. -10 .. 2).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import xarray as xr

from stmodel.data.readers import describe_source
from stmodel.downscaling.baselines import is_periodic
from stmodel.errors import DataError, UserError

# Coordinates that agree to this many degrees are the same grid line.
TOLERANCE_DEG = 1e-6


@dataclasses.dataclass(frozen=True)
class RegionBox:
    lat_south: float
    lat_north: float
    lon_west: float  # degrees east, any representation (-10 and 350 are the same)
    lon_east: float

    def __post_init__(self):
        if not -90.0 <= self.lat_south < self.lat_north <= 90.0:
            raise UserError(
                f"region {self.text()}: latitudes must satisfy -90 <= LAT0 < LAT1 <= 90"
            )
        if not (-360.0 <= self.lon_west <= 360.0 and -360.0 <= self.lon_east <= 360.0):
            raise UserError(f"region {self.text()}: longitudes must lie in [-360, 360]")
        if self.width <= 0:
            raise UserError(
                f"region {self.text()}: LON0 and LON1 are the same meridian; a box "
                "needs a width (use 0,360 for all longitudes)"
            )

    @classmethod
    def parse(cls, text: str) -> RegionBox:
        """From 'LAT0,LAT1,LON0,LON1' (degrees), e.g. '20,70,0,90' or '50,58,-10,2'."""
        parts = [p.strip() for p in str(text).split(",")]
        try:
            values = [float(p) for p in parts]
        except ValueError:
            values = []
        if len(values) != 4:
            raise UserError(
                f"region {text!r}: expected LAT0,LAT1,LON0,LON1 in degrees, e.g. "
                "20,70,0,90 or 50,58,-10,2"
            )
        return cls(*values)

    def text(self) -> str:
        return ",".join(
            f"{v:g}" for v in (self.lat_south, self.lat_north, self.lon_west, self.lon_east)
        )

    @property
    def west(self) -> float:
        """The western edge in [0, 360)."""
        return self.lon_west % 360.0

    @property
    def width(self) -> float:
        """Degrees of longitude from the western to the eastern edge, going east (0, 360]."""
        width = (self.lon_east - self.lon_west) % 360.0
        if width == 0.0 and self.lon_east != self.lon_west:
            return 360.0
        return width

    @property
    def crosses_prime_meridian(self) -> bool:
        return self.west + self.width > 360.0 + TOLERANCE_DEG

    def frame_west(self, margin: float = 0.0) -> float:
        """Where the contiguous longitude frame of a selection (widened by `margin`) starts:
        negative when the widened box crosses 0 deg, so the frame never passes 360."""
        west = self.west - margin
        if west >= 0 and west + self.width + 2 * margin > 360.0 + TOLERANCE_DEG:
            west -= 360.0
        return west

    def east_of_west_edge(self, lon: np.ndarray, margin: float = 0.0) -> np.ndarray:
        """Degrees east of the (margin-widened) western edge, in [0, 360)."""
        return (
            np.asarray(lon, np.float64) - (self.west - margin) + TOLERANCE_DEG
        ) % 360.0 - TOLERANCE_DEG

    def contiguous_longitudes(self, lon: np.ndarray, margin: float = 0.0) -> np.ndarray:
        """Longitudes in the contiguous frame of a selection widened by `margin`.

        Shifted by whole turns only, so a grid longitude keeps its exact value or
        moves by exactly 360 (340 becomes -20, not -19.999999).
        """
        lon = np.asarray(lon, np.float64)
        turns = np.ceil((self.frame_west(margin) - TOLERANCE_DEG - lon) / 360.0)
        return lon + 360.0 * turns


def select_region(
    ds: xr.Dataset, box: RegionBox, *, margin: float = 0.0, require_cover: bool = True
) -> xr.Dataset:
    """The part of a canonical dataset inside the box widened by `margin` degrees.

    Longitudes wrap around a global grid; the result has contiguous ascending
    longitudes (see the module docstring). With `require_cover`, the data's grid
    must reach every edge of the box (within half a grid spacing); the margin is
    taken where the data has it.
    """
    where = describe_source(ds)
    lat = np.asarray(ds["lat"].values, np.float64)
    lon = np.asarray(ds["lon"].values, np.float64)
    lat_keep = np.flatnonzero(
        (lat >= box.lat_south - margin - TOLERANCE_DEG)
        & (lat <= box.lat_north + margin + TOLERANCE_DEG)
    )
    offset = box.east_of_west_edge(lon, margin)
    lon_keep = np.flatnonzero(offset <= box.width + 2 * margin + TOLERANCE_DEG)
    if lat_keep.size == 0 or lon_keep.size == 0:
        raise DataError(
            f"{where}: no grid point lies in the region {box.text()} (the data "
            f"cover latitudes {_extent(lat)} and longitudes {_extent(lon)})"
        )
    if require_cover:
        _require_cover(ds, box, where)
    lon_keep = lon_keep[np.argsort(offset[lon_keep], kind="stable")]
    selected = ds.isel(lat=lat_keep, lon=lon_keep)
    new_lon = box.contiguous_longitudes(lon[lon_keep], margin)
    return selected.assign_coords(lon=("lon", new_lon, ds["lon"].attrs))


def _require_cover(ds: xr.Dataset, box: RegionBox, where: str) -> None:
    """The data's grid must reach each edge of the box, within half a grid spacing."""
    lat = np.asarray(ds["lat"].values, np.float64)
    lon = np.asarray(ds["lon"].values, np.float64)
    lat_step, lon_step = _spacing(lat), _spacing(lon)
    missing = []
    if lat.min() > box.lat_south + lat_step / 2 + TOLERANCE_DEG:
        missing.append(f"south of {lat.min():g} N")
    if lat.max() < box.lat_north - lat_step / 2 - TOLERANCE_DEG:
        missing.append(f"north of {lat.max():g} N")
    if not is_periodic(lon):
        # Offsets east of the data's western column; a box edge just west of it is negative.
        start = (box.west - lon[0]) % 360.0
        if start > 360.0 - lon_step / 2 - TOLERANCE_DEG:
            start -= 360.0
        span = (lon[-1] - lon[0]) % 360.0
        if start < -lon_step / 2 - TOLERANCE_DEG or start > span + lon_step / 2:
            missing.append(f"west of {lon[0]:g} E")
        if start + box.width > span + lon_step / 2 + TOLERANCE_DEG:
            missing.append(f"east of {lon[-1]:g} E")
    if missing:
        raise DataError(
            f"{where}: the data do not cover the region {box.text()}: nothing "
            f"{' or '.join(missing)}; choose a region inside the data's grid"
        )


def _spacing(values: np.ndarray) -> float:
    return float(np.median(np.diff(values))) if values.size > 1 else 0.0


def _extent(values: np.ndarray) -> str:
    return f"{values.min():g}..{values.max():g}" if values.size else "none"
