"""Block-mean coarsening: the coarse input of a worked downscaling case made from its truth.

Each coarse cell is the mean of `factor` x `factor` fine cells, and its
coordinates are the mean of theirs, so it sits at the centre of the area it
averages. Rows and columns that do not fill a whole block are dropped at the
northern and eastern ends (select a region first to choose differently).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from stmodel.atomic_files import atomic_path
from stmodel.data.readers import describe_source, open_canonical
from stmodel.downscaling.region import RegionBox, select_region
from stmodel.errors import DataError, UserError


def coarsen(ds: xr.Dataset, factor: int) -> xr.Dataset:
    """Block means over factor x factor cells of every variable with lat and lon (lazy)."""
    if factor < 2:
        raise UserError(f"--factor {factor}: coarsening needs a factor of at least 2")
    n_lat, n_lon = ds.sizes["lat"], ds.sizes["lon"]
    if n_lat < factor or n_lon < factor:
        where = describe_source(ds)
        raise DataError(f"{where}: a {n_lat} x {n_lon} grid has no whole {factor} x {factor} block")
    trimmed = ds.isel(lat=slice(0, n_lat - n_lat % factor), lon=slice(0, n_lon - n_lon % factor))
    gridded = [name for name in trimmed.data_vars if {"lat", "lon"} <= set(trimmed[name].dims)]
    coarse = trimmed[gridded].coarsen(lat=factor, lon=factor).mean()
    for name in gridded:
        coarse[name] = coarse[name].astype(np.float32)
        coarse[name].attrs = ds[name].attrs
    coarse.attrs = {k: v for k, v in ds.attrs.items() if not k.startswith("stmodel_sources")}
    coarse.attrs["history"] = (
        f"{ds.attrs.get('history', '')}\n" if ds.attrs.get("history") else ""
    ) + f"stmodel downscale coarsen --factor {factor}"
    for dim in ("lat", "lon"):
        coarse[dim].attrs = ds[dim].attrs
    return coarse


def coarsen_file(
    paths: Sequence[str | Path], out: str | Path, factor: int, box: RegionBox | None = None
) -> Path:
    """Coarsen data (optionally cut to a region first) and write canonical NetCDF atomically."""
    ds = open_canonical(paths)
    if box is not None:
        ds = select_region(ds, box)
    coarse = coarsen(ds, factor)
    out = Path(out)
    encoding = {name: {"zlib": True, "complevel": 1} for name in coarse.data_vars}
    with atomic_path(out) as temporary:
        coarse.to_netcdf(temporary, encoding=encoding)
    return out
