"""Putting the truth (canonical form) on the forecast's grid, levels and valid times."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from stmodel.errors import DataError
from stmodel.evaluation.forecast_layout import SPATIAL_DIMS, to_forecast_grid

# A grid point of the forecast matches one of the truth within this distance (degrees).
GRID_TOLERANCE_DEGREES = 1e-3
MAX_LISTED_TIMES = 8


def on_forecast_grid(dataset: xr.Dataset, forecast: xr.Dataset, source: str) -> xr.Dataset:
    """``dataset`` at the forecast's grid points, with the forecast's coordinates exactly.

    Truth and climatology may cover more than the forecast (a regional forecast
    scored against global truth); every forecast point must exist in them.
    """
    dataset = to_forecast_grid(dataset, source)
    indexers = {}
    for dim in SPATIAL_DIMS:
        wanted = forecast[dim].values
        available = dataset[dim].values
        index = pd.Index(available).get_indexer(
            wanted, method="nearest", tolerance=GRID_TOLERANCE_DEGREES
        )
        if np.any(index < 0):
            raise DataError(
                f"{source}: its {dim} ({available.size} points, {_span(available)}) does not "
                f"contain the forecast's {dim} ({wanted.size} points, {_span(wanted)}); "
                "regrid the forecast or the truth to the same grid first"
            )
        if not np.array_equal(index, np.arange(available.size)):
            indexers[dim] = index
    dataset = dataset.isel(indexers)
    return dataset.assign_coords({dim: forecast[dim].values for dim in SPATIAL_DIMS})


def _span(values: np.ndarray) -> str:
    if values.size == 0:
        return "empty"
    return f"{values[0]:g}..{values[-1]:g}"


def select_levels(field: xr.DataArray, levels: np.ndarray, source: str) -> xr.DataArray:
    """``field`` at the forecast's pressure levels, in the forecast's order."""
    if "level" not in field.dims:
        raise DataError(
            f"{source}: variable '{field.name}' has no 'level' dimension, but the "
            f"forecast has it on levels {list(levels)} hPa"
        )
    missing = sorted(set(levels.tolist()) - set(field["level"].values.tolist()))
    if missing:
        raise DataError(
            f"{source}: variable '{field.name}' lacks levels {missing} hPa that the "
            f"forecast has; available: {field['level'].values.tolist()}"
        )
    return field.sel(level=levels)


def check_times_available(
    truth: xr.Dataset, times: xr.DataArray, source: str, what: str = "valid times"
) -> None:
    """Raise a DataError naming the truth files and the first missing times, if any."""
    wanted = pd.DatetimeIndex(np.unique(times.values.ravel()))
    missing = wanted[pd.DatetimeIndex(truth["time"].values).get_indexer(wanted) < 0]
    if missing.size:
        listed = ", ".join(str(time) for time in missing[:MAX_LISTED_TIMES])
        more = (
            f" and {missing.size - MAX_LISTED_TIMES} more"
            if missing.size > MAX_LISTED_TIMES
            else ""
        )
        truth_times = truth["time"].values
        span = (
            f"{pd.Timestamp(truth_times[0])} to {pd.Timestamp(truth_times[-1])}"
            if truth_times.size
            else "no times"
        )
        raise DataError(
            f"{source}: the truth lacks {missing.size} of the forecast's {what}: "
            f"{listed}{more}; the truth covers {span}"
        )


def select_times(field: xr.DataArray, times: xr.DataArray) -> xr.DataArray:
    """``field`` at ``times`` (any shape), loaded: dims ``times.dims`` + the field's others.

    Valid times of neighbouring inits and leads overlap, so each distinct time
    is read once. Call :func:`check_times_available` first.
    """
    flat_times = times.values.ravel()
    index = pd.DatetimeIndex(field["time"].values).get_indexer(flat_times)
    if np.any(index < 0):
        raise ValueError("select_times called with times missing from the field")
    unique_index, inverse = np.unique(index, return_inverse=True)
    loaded = field.isel(time=unique_index).load()
    gather = xr.DataArray(inverse.reshape(times.shape), dims=times.dims)
    selected = loaded.drop_vars("time").isel(time=gather)
    return selected.assign_coords(
        {dim: times[dim].values for dim in times.dims if dim in times.coords}
    )
