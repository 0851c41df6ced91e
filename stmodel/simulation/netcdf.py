"""Writes the simulated reanalysis as a CF-compliant NetCDF file in canonical form.

Dims (time, level, lat, lon), level in hPa ascending, latitude ascending,
longitude in [0, 360), data variables float32 with units and long_name. The
file is written chunk by chunk, so the whole record never sits in memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import netCDF4
import numpy as np

from stmodel.data import cf_coordinates
from stmodel.data.canonical import UNITS
from stmodel.simulation.levels import PRESSURE_LEVEL_FIELDS, SURFACE_FIELDS

# (long_name, CF standard_name) of every written variable.
VARIABLE_NAMES = {
    "geopotential": ("Geopotential", "geopotential"),
    "temperature": ("Temperature", "air_temperature"),
    "u_component_of_wind": ("U component of wind", "eastward_wind"),
    "v_component_of_wind": ("V component of wind", "northward_wind"),
    "surface_pressure": ("Surface pressure", "surface_air_pressure"),
    "lowest_model_level_temperature": ("Temperature at the lowest model level", "air_temperature"),
    "lowest_model_level_u_component_of_wind": (
        "U component of wind at the lowest model level",
        "eastward_wind",
    ),
    "lowest_model_level_v_component_of_wind": (
        "V component of wind at the lowest model level",
        "northward_wind",
    ),
}


def write_canonical_netcdf(
    path: str,
    *,
    first_day: str,
    hours: np.ndarray,
    levels_hpa: Sequence[int],
    latitudes: np.ndarray,
    longitudes: np.ndarray,
    chunks: Iterable[dict[str, np.ndarray]],
    attributes: dict[str, str | int | float],
    variable_comments: dict[str, str],
) -> None:
    """Writes the file at `path` (which the caller then renames into place).

    Args:
      first_day: "YYYY-MM-DD", the time origin.
      hours: [time] int, hours since 00 UTC of `first_day`.
      levels_hpa: ascending pressure levels.
      latitudes, longitudes: ascending, degrees.
      chunks: consecutive blocks of frames, {name: [time, (level,) lat, lon]}.
      attributes: global attributes.
      variable_comments: an optional `comment` attribute per variable.
    """
    if list(levels_hpa) != sorted(levels_hpa):
        raise ValueError(f"levels must be ascending, got {levels_hpa}")
    with netCDF4.Dataset(path, "w", format="NETCDF4") as dataset:
        cf_coordinates.add_time(dataset, hours, first_day=first_day, dtype="i4")
        cf_coordinates.add_level(dataset, levels_hpa)
        cf_coordinates.add_grid(dataset, latitudes, longitudes)

        variables = {}
        for name in PRESSURE_LEVEL_FIELDS + SURFACE_FIELDS:
            dims = (
                ("time", "level", "lat", "lon")
                if name in PRESSURE_LEVEL_FIELDS
                else ("time", "lat", "lon")
            )
            # No fill value: the simulation has no missing data.
            variable = dataset.createVariable(name, "f4", dims, fill_value=False, contiguous=True)
            long_name, standard_name = VARIABLE_NAMES[name]
            variable.setncatts(
                {"units": UNITS[name], "long_name": long_name, "standard_name": standard_name}
            )
            if name in variable_comments:
                variable.comment = variable_comments[name]
            variables[name] = variable

        start = 0
        for chunk in chunks:
            length = None
            for name, variable in variables.items():
                values = chunk[name]
                length = values.shape[0] if length is None else length
                if values.shape[0] != length:
                    raise ValueError(f"chunk fields differ in length: {name}")
                variable[start : start + length] = values
            start += length
        if start != len(hours):
            raise ValueError(f"chunks hold {start} time steps, expected {len(hours)}")

        dataset.setncatts(attributes)


def read_global_attribute(path: str, name: str) -> str | None:
    """A global attribute of a NetCDF file, None if absent or unreadable."""
    try:
        with netCDF4.Dataset(path, "r") as dataset:
            return getattr(dataset, name, None)
    except OSError:
        return None
