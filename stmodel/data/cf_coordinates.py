"""CF coordinate variables (time, level, latitude, longitude) of the NetCDF files stmodel writes.

The simulated reanalysis, forecasts and downscaled fields are written with
netCDF4 one block at a time; their coordinates are made here, so every file
describes time, pressure level and the grid with the same attributes.
"""

from __future__ import annotations

from collections.abc import Sequence

import netCDF4
import numpy as np

EPOCH = np.datetime64("1970-01-01T00:00:00", "s")
CALENDAR = "proleptic_gregorian"

LEVEL_ATTRIBUTES = {
    "standard_name": "air_pressure",
    "long_name": "pressure level",
    "units": "hPa",
    "axis": "Z",
    "positive": "down",
}
LATITUDE_ATTRIBUTES = {
    "standard_name": "latitude",
    "long_name": "latitude",
    "units": "degrees_north",
    "axis": "Y",
}
LONGITUDE_ATTRIBUTES = {
    "standard_name": "longitude",
    "long_name": "longitude",
    "units": "degrees_east",
    "axis": "X",
}


def time_units(first_day: str = "1970-01-01") -> str:
    """CF units of hours counted from 00 UTC of ``first_day`` ("YYYY-MM-DD")."""
    return f"hours since {first_day} 00:00:00"


def hours_since_epoch(times: np.ndarray) -> np.ndarray:
    """[time] datetime64 -> [time] float hours since 1970-01-01, as :func:`time_units` says."""
    return (np.asarray(times, "datetime64[s]") - EPOCH) / np.timedelta64(1, "h")


def add_coordinate(
    dataset: netCDF4.Dataset, name: str, dtype: str, values: np.ndarray, attributes: dict
) -> None:
    """A dimension ``name`` and its coordinate variable, written whole."""
    dataset.createDimension(name, len(values))
    # No fill value: a coordinate is written whole, so it never has missing values.
    variable = dataset.createVariable(name, dtype, (name,), fill_value=False)
    variable.setncatts(attributes)
    variable[:] = values


def add_time(
    dataset: netCDF4.Dataset,
    hours: np.ndarray,
    *,
    first_day: str = "1970-01-01",
    dtype: str = "f8",
    standard_name: str = "time",
    long_name: str = "time",
) -> None:
    """The ``time`` coordinate: ``hours`` [time] since 00 UTC of ``first_day``."""
    attributes = {
        "standard_name": standard_name,
        "long_name": long_name,
        "axis": "T",
        "units": time_units(first_day),
        "calendar": CALENDAR,
    }
    add_coordinate(dataset, "time", dtype, hours, attributes)


def add_level(dataset: netCDF4.Dataset, levels_hpa: Sequence[int]) -> None:
    """The ``level`` coordinate, pressure in hPa."""
    add_coordinate(dataset, "level", "i4", np.asarray(levels_hpa, np.int32), LEVEL_ATTRIBUTES)


def add_grid(
    dataset: netCDF4.Dataset,
    latitudes: np.ndarray,
    longitudes: np.ndarray,
    names: tuple[str, str] = ("lat", "lon"),
) -> None:
    """Latitude and longitude coordinates (degrees), named ``names`` (canonical lat/lon,
    or latitude/longitude in the WeatherBench 2 forecast layout)."""
    add_coordinate(dataset, names[0], "f8", latitudes, LATITUDE_ATTRIBUTES)
    add_coordinate(dataset, names[1], "f8", longitudes, LONGITUDE_ATTRIBUTES)
