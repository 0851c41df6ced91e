"""Climatologies and their value at given valid times.

A climatology file (``stmodel data stats``) holds canonical variables with a
prefix of dims from (``dayofyear``, ``hour``) before (``level``,) ``lat``,
``lon``, and says which in its global attribute ``climatology_kind``:

* ``dayofyear_hour``: dims (dayofyear 1..366, hour 0..23, ...)
* ``hour``: dims (hour, ...): a mean per hour of day over the whole period
* ``time_mean``: no prefix: one mean state
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from stmodel.data.statistics import KIND_DIMS
from stmodel.errors import DataError, UserError

KIND_ATTRIBUTE = "climatology_kind"
MAX_LISTED_TIMES = 8


def climatology_kind(climatology: xr.Dataset, source: str) -> str:
    """The kind the attribute declares, checked against the dims it has."""
    kind = climatology.attrs.get(KIND_ATTRIBUTE)
    present = tuple(dim for dim in ("dayofyear", "hour") if dim in climatology.dims)
    if kind is None:
        kinds = [name for name, dims in KIND_DIMS.items() if dims == present]
        if not kinds:
            raise DataError(
                f"{source}: no '{KIND_ATTRIBUTE}' attribute and time dims {present} "
                f"match no climatology kind; expected one of {list(KIND_DIMS)}"
            )
        return kinds[0]
    if kind not in KIND_DIMS:
        raise DataError(f"{source}: {KIND_ATTRIBUTE}={kind!r}, expected one of {list(KIND_DIMS)}")
    if present != KIND_DIMS[kind]:
        raise DataError(
            f"{source}: {KIND_ATTRIBUTE}={kind!r} needs dims {KIND_DIMS[kind]} "
            f"before the grid, found {present}"
        )
    return kind


def open_climatology(path: str | Path) -> xr.Dataset:
    """Open a climatology file lazily; ``attrs['climatology_kind']`` is checked and set."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: climatology file not found")
    try:
        climatology = xr.open_dataset(path, chunks={})
    except (OSError, ValueError) as error:
        raise DataError(
            f"{path}: cannot open as a climatology NetCDF/Zarr file ({error})"
        ) from error
    climatology.attrs[KIND_ATTRIBUTE] = climatology_kind(climatology, str(path))
    return climatology


def hour_of_day_climatology(truth: xr.Dataset, before: np.datetime64, source: str) -> xr.Dataset:
    """Time mean per hour of day of the truth strictly before ``before`` (kind ``hour``), lazy."""
    earlier = truth.sel(time=truth["time"] < np.datetime64(before, "ns"))
    if earlier.sizes["time"] == 0:
        raise UserError(
            f"{source}: the truth has no data before the first init time {pd.Timestamp(before)}, "
            "so no climatology can be derived from it; ACC and the climatology baseline need a "
            "climatology: pass --climatology FILE (made by `stmodel data stats`) or truth that "
            "starts before the forecasts"
        )
    climatology = earlier.groupby("time.hour").mean("time")
    climatology.attrs = {
        KIND_ATTRIBUTE: "hour",
        "description": f"mean per hour of day of the truth before "
        f"{pd.Timestamp(before)} ({earlier.sizes['time']} times)",
    }
    return climatology


def _selection_keys(climatology: xr.DataArray, valid_times: pd.DatetimeIndex) -> pd.DataFrame:
    """Per valid time, the coordinates to select in each time dim of the climatology."""
    keys = {}
    if "dayofyear" in climatology.dims:
        keys["dayofyear"] = valid_times.day_of_year
    if "hour" in climatology.dims:
        keys["hour"] = valid_times.hour
    return pd.DataFrame(keys, index=range(len(valid_times)))


def climatology_at(
    climatology: xr.DataArray, valid_times: xr.DataArray, source: str
) -> xr.DataArray:
    """The climatology at every valid time, loaded: dims ``valid_times.dims`` + grid dims.

    Selects by day of year and/or hour of day as the climatology's dims say;
    each distinct (dayofyear, hour) is read once.
    """
    flat_times = pd.DatetimeIndex(valid_times.values.ravel())
    keys = _selection_keys(climatology, flat_times)
    if keys.columns.empty:
        # A time-mean climatology is the same at every valid time.
        gather_index = np.zeros(len(flat_times), dtype=np.int64)
        fields = [climatology.load()]
    else:
        unique_keys, inverse = np.unique(keys.to_numpy(), axis=0, return_inverse=True)
        gather_index = inverse.ravel()
        fields = []
        for key in unique_keys:
            selection = dict(zip(keys.columns, key.tolist()))
            try:
                fields.append(climatology.sel(selection).load())
            except KeyError:
                needing = flat_times[(keys.to_numpy() == key).all(axis=1)]
                listed = ", ".join(str(time) for time in needing[:MAX_LISTED_TIMES])
                available = ", ".join(
                    f"{dim} {climatology[dim].values.min()}..{climatology[dim].values.max()} "
                    f"({climatology.sizes[dim]} values)"
                    for dim in keys.columns
                )
                raise DataError(
                    f"{source}: climatology of '{climatology.name}' has no entry for "
                    f"{selection}, needed for valid times {listed}; it has {available}"
                ) from None
    fields = [
        field.drop_vars([dim for dim in keys.columns if dim in field.coords]) for field in fields
    ]
    stacked = xr.concat(fields, dim="climatology_entry")
    gather = xr.DataArray(gather_index.reshape(valid_times.shape), dims=valid_times.dims)
    selected = stacked.isel(climatology_entry=gather)
    return selected.assign_coords(
        {dim: valid_times[dim].values for dim in valid_times.dims if dim in valid_times.coords}
    )
