"""Opening forecast files in the WeatherBench 2 layout, whatever tool wrote them.

Forecasts from other tools differ in small ways: ``lat``/``lon`` instead of
``latitude``/``longitude``, latitude descending, longitude in [-180, 180),
dimensions in another order. Everything is brought to one form here, so the
metrics never see the difference:

* dims ``time`` (init time), ``prediction_timedelta`` (timedelta64),
  ``realization`` (ensemble members, ensemble forecasts only), ``level``
  (upper-air only), ``latitude``, ``longitude``, in that order;
* latitude strictly ascending, longitude in [0, 360) strictly ascending.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from stmodel.data.canonical import (
    FORECAST_GRID_DIMS,
    SHORT_NAMES,
    canonical_dim_renames,
    wrap_longitude,
)
from stmodel.errors import DataError
from stmodel.evaluation.metric_base import REALIZATION_DIM

# realization: an ensemble's members (WeatherBench 2's name), in ensemble forecasts only;
# after the init time, as the forecast files store them.
FORECAST_DIMS = (
    "time",
    REALIZATION_DIM,
    "prediction_timedelta",
    "level",
    "latitude",
    "longitude",
)
SPATIAL_DIMS = ("latitude", "longitude")

# Attributes that may carry the model's name, in order of preference.
MODEL_NAME_ATTRIBUTES = ("model_name", "model", "name")


def to_forecast_grid(dataset: xr.Dataset, source: str) -> xr.Dataset:
    """Rename grid dims to latitude/longitude, latitude ascending, longitude in [0, 360) ascending.

    Used for forecasts, truth and climatology alike (truth and climatology
    arrive as ``lat``/``lon`` in the canonical form), so all three line up.
    """
    dataset = dataset.rename(canonical_dim_renames(dataset))
    dataset = dataset.rename(
        {n: w for n, w in FORECAST_GRID_DIMS.items() if n in dataset.variables}
    )
    for dim in SPATIAL_DIMS:
        if dim not in dataset.dims:
            raise DataError(
                f"{source}: no '{dim}' dimension (or '{dim[:3]}'); "
                f"found dimensions {sorted(dataset.dims)}"
            )
        if dim not in dataset.coords:
            raise DataError(f"{source}: dimension '{dim}' has no coordinate values (degrees)")
    longitude = dataset["longitude"]
    dataset = dataset.assign_coords(longitude=longitude.copy(data=wrap_longitude(longitude.values)))
    # Sorting reindexes every (lazy) array, so only grids out of order are sorted.
    unsorted = [dim for dim in SPATIAL_DIMS if not dataset.indexes[dim].is_monotonic_increasing]
    if unsorted:
        dataset = dataset.sortby(unsorted)
    for dim in SPATIAL_DIMS:
        values = dataset[dim].values
        if values.size > 1 and not np.all(np.diff(values) > 0):
            raise DataError(
                f"{source}: '{dim}' has repeated values (after mapping longitude "
                "to [0, 360)); expected each grid point once"
            )
    return dataset


def open_forecast(path: str | Path) -> xr.Dataset:
    """Open a forecast file lazily and bring it to the layout described above."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: forecast file not found")
    is_zarr = path.is_dir() or path.suffix == ".zarr"
    try:
        if is_zarr:  # a Zarr store (stmodel forecast --out X.zarr), consolidated or not
            dataset = xr.open_zarr(path, chunks={}, consolidated=None, decode_timedelta=True)
        else:
            dataset = xr.open_dataset(path, chunks={}, decode_timedelta=True)
    except Exception as error:  # netCDF4 / h5py / zarr raise many unrelated types
        reason = " ".join(f"{type(error).__name__}: {error}".split())
        raise DataError(f"{path}: cannot open as a forecast NetCDF/Zarr file ({reason})") from error
    return to_forecast_layout(dataset, str(path))


def to_forecast_layout(dataset: xr.Dataset, path: str | Path) -> xr.Dataset:
    """A forecast Dataset (from a file or in memory) brought to the layout described above."""
    dataset = to_forecast_grid(dataset, str(path))
    dataset = dataset.rename(
        {
            short: long
            for short, long in SHORT_NAMES.items()
            if short in dataset.data_vars and long not in dataset.data_vars
        }
    )
    for dim in ("time", "prediction_timedelta"):
        if dim not in dataset.dims:
            raise DataError(
                f"{path}: no '{dim}' dimension; expected the WeatherBench 2 forecast "
                f"layout (time = init time, prediction_timedelta, level, latitude, "
                f"longitude), found dimensions {sorted(dataset.dims)}"
            )
    if not np.issubdtype(dataset["prediction_timedelta"].dtype, np.timedelta64):
        raise DataError(
            f"{path}: 'prediction_timedelta' is "
            f"{dataset['prediction_timedelta'].dtype}, expected timedelta64 "
            "(CF units such as 'hours')"
        )
    if not np.issubdtype(dataset["time"].dtype, np.datetime64):
        raise DataError(f"{path}: init 'time' is {dataset['time'].dtype}, expected datetime64")
    if REALIZATION_DIM in dataset.dims and dataset.sizes[REALIZATION_DIM] == 0:
        raise DataError(
            f"{path}: the '{REALIZATION_DIM}' dimension (ensemble members) is empty; "
            "expected at least one member"
        )
    order = [dim for dim in FORECAST_DIMS if dim in dataset.dims]
    return dataset.transpose(*order, ...)


def forecast_variables(forecast: xr.Dataset) -> list[str]:
    """Variables with an init time, a lead and a grid: the ones there is something to score."""
    needed = {"time", "prediction_timedelta", *SPATIAL_DIMS}
    return [name for name, variable in forecast.data_vars.items() if needed <= set(variable.dims)]


def valid_times(forecast: xr.Dataset) -> xr.DataArray:
    """Valid time of every (init time, lead): [time, prediction_timedelta]."""
    return forecast["time"] + forecast["prediction_timedelta"]


def model_name(forecast: xr.Dataset, path: str | Path) -> str:
    """The model's name from the file's attributes, else the file's stem."""
    for attribute in MODEL_NAME_ATTRIBUTES:
        value = forecast.attrs.get(attribute)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return Path(path).stem
