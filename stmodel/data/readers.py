"""Open NetCDF / Zarr reanalysis in any common style, lazily, in canonical form.

This is the thin xarray boundary of stmodel: it renames and reorders, and never
loads data. Styles understood (and mixed freely across files):

* ERA5 from the Copernicus CDS: short names (z, t, u, v, q, sp, msl, t2m, u10,
  v10), dims valid_time / pressure_level / latitude / longitude, latitude
  90 -> -90, levels in any order, float64 or packed int16 (scale/offset);
* WeatherBench 2: long names, dims time / level / latitude / longitude;
* GraphCast example files: dims (batch, time, lat, lon, level), a batch of 1
  and a ``datetime`` coordinate giving the valid times;
* longitude -180..180, several files (one per variable or per year).
"""

from __future__ import annotations

import glob
import json
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from stmodel.data import canonical, cf_coordinates
from stmodel.errors import DataError

# Coordinates that ERA5 / cfgrib files carry and that mean nothing downstream.
_DROPPABLE_COORDS = ("number", "step", "surface", "expver", "heightAboveGround", "meanSea")

# Where the list of source files is kept, as JSON, so errors can name files.
SOURCES_ATTR = "stmodel_sources"


def expand_paths(paths: Sequence[str | Path]) -> list[Path]:
    """Expand globs; every entry must name at least one existing file or Zarr store."""
    expanded: list[Path] = []
    for entry in paths:
        entry = str(entry)
        matches = sorted(glob.glob(entry)) if any(c in entry for c in "*?[") else [entry]
        if not matches:
            raise DataError(f"{entry}: no file matches this pattern")
        for match in matches:
            path = Path(match)
            if not path.exists():
                raise DataError(f"{path}: no such file or directory")
            expanded.append(path)
    if not expanded:
        raise DataError("no input files were given")
    return expanded


def open_canonical(
    paths: Sequence[str | Path] | str | Path, *, chunks: dict | None = None
) -> xr.Dataset:
    """Open files of any supported style as one lazy canonical Dataset.

    Files holding different variables are merged; files holding the same
    variables over different times (one per year, say) are concatenated in
    time. Grids must agree exactly between files. Arrays are dask arrays with
    one time step per chunk (or `chunks`, by canonical dimension name), so
    reading one sample reads only that time step from disk.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    files = expand_paths(paths)
    pieces = [(path, canonicalise(_open_one(path), source=path)) for path in files]
    ds = _combine(pieces)
    chunks = chunks or {"time": 1}
    return ds.chunk({dim: size for dim, size in chunks.items() if dim in ds.dims})


def _open_one(path: Path) -> xr.Dataset:
    """Open without loading (xarray's lazy backend arrays; chunked later)."""
    is_zarr = path.is_dir() or path.suffix == ".zarr"
    try:
        with warnings.catch_warnings():
            # ERA-Interim / CDS files often carry a NaN _FillValue xarray warns about.
            warnings.simplefilter("ignore", xr.SerializationWarning)
            if is_zarr:
                ds = _missing_chunks_as_nan(xr.open_zarr(path, chunks=None), path)
            else:
                ds = xr.open_dataset(path, cache=False)
    except Exception as error:  # netCDF4/h5py/zarr raise many unrelated types
        raise _unreadable(path, is_zarr, f"{type(error).__name__}: {error}") from error
    if not ds.data_vars:
        raise _unreadable(path, is_zarr, "no variables found")
    # Dask from here on, so renaming, reordering and casting stay lazy.
    return ds.chunk({dim: 1 for dim in ("time", "valid_time") if dim in ds.dims})


def _missing_chunks_as_nan(ds: xr.Dataset, path: Path) -> xr.Dataset:
    """``ds`` with NaN where its Zarr store has no chunk: zarr reads an absent chunk as the
    array's fill value, 0 where that is unset, which would pass for data (0 K). The NaN
    checks then name the variable and the first time of the gap."""
    import zarr

    if not path.is_dir():
        return ds  # a zip or remote store: what zarr gives is all there is to go by
    group = zarr.open_group(path, mode="r")
    for name in ds.data_vars:
        array = group.get(name)
        if not isinstance(array, zarr.Array) or array.nchunks_initialized == array.nchunks:
            continue
        folder = path / array.path
        stored = {
            file.relative_to(folder).as_posix() for file in folder.rglob("*") if file.is_file()
        }
        # Chunks, or the shards holding them where the array is sharded.
        present = np.array([key in stored for key in array._iter_shard_keys()], bool)
        grid = tuple(-(-n // c) for n, c in zip(array.shape, array.shards or array.chunks))
        ds[name] = ds[name].where(
            xr.DataArray(_chunk_mask(present.reshape(grid), array), dims=ds[name].dims)
        )
    return ds


def _chunk_mask(present: np.ndarray, array):
    """A lazy boolean array of ``array``'s shape, False inside the chunks not present."""
    import dask.array

    size = array.shards or array.chunks
    chunks = tuple(
        tuple(min(c, n - start) for start in range(0, n, c)) for n, c in zip(array.shape, size)
    )

    def block(block_info=None):
        info = block_info[None]
        return np.full(info["chunk-shape"], present[tuple(info["chunk-location"])])

    return dask.array.map_blocks(block, dtype=bool, chunks=chunks)


def _unreadable(path: Path, is_zarr: bool, reason: str) -> DataError:
    kind = "Zarr store" if is_zarr else "NetCDF file"
    reason = " ".join(reason.split())  # one line, whatever the library's message
    return DataError(
        f"{path}: cannot be read as a {kind} ({reason}); is it truncated, still "
        "downloading, or of another format?"
    )


def canonicalise(ds: xr.Dataset, *, source: str | Path = "<dataset>") -> xr.Dataset:
    """Bring one dataset to canonical form (see stmodel.data.canonical), lazily."""
    ds = _drop_graphcast_batch(ds, source)
    ds = ds.drop_vars([c for c in _DROPPABLE_COORDS if c in ds.coords and c not in ds.dims])
    ds = ds.rename(canonical.canonical_dim_renames(ds))
    for dim in ("time", "level", "lat", "lon"):
        if dim in ds.dims and ds.sizes[dim] == 0:
            raise DataError(f"{source}: its {dim} dimension is empty; expected at least one {dim}")
    for dim in ("lat", "lon"):
        if dim not in ds.dims:
            raise DataError(
                f"{source}: no {dim} dimension found (dims are {list(ds.dims)}); "
                "expected one of latitude/lat and longitude/lon"
            )
    renames = {
        name: _long_name(name, ds[name])
        for name in ds.data_vars
        if _long_name(name, ds[name]) != name
    }
    for old, new in renames.items():
        if new in ds.variables:
            raise DataError(
                f"{source}: holds both {old} and {new}, which are the same variable "
                f"({old} is the short name of {new}); keep one"
            )
    ds = ds.rename(renames)
    ds = _levels_to_hpa(ds, source)
    ds = _sort_lat_lon(ds)
    if "level" in ds.dims:
        ds = ds.sortby("level")
        ds = ds.assign_coords(level=ds["level"].astype(np.int32))
    for name in list(ds.data_vars):
        known = [d for d in canonical.DIMS if d in ds[name].dims]
        other = [d for d in ds[name].dims if d not in canonical.DIMS]
        ds[name] = ds[name].transpose(*other, *known).astype(np.float32)
        ds[name].attrs.setdefault(
            "units", canonical.UNITS.get(name, ds[name].attrs.get("units", ""))
        )
    ds.attrs[SOURCES_ATTR] = json.dumps([str(source)])
    return ds


def _drop_graphcast_batch(ds: xr.Dataset, source) -> xr.Dataset:
    if "batch" not in ds.dims:
        return ds
    if ds.sizes["batch"] != 1:
        raise DataError(
            f"{source}: has a batch dimension of size {ds.sizes['batch']}; "
            "stmodel reads GraphCast-style files with batch = 1"
        )
    ds = ds.isel(batch=0)
    if "datetime" in ds.coords and "time" in ds.dims:
        # GraphCast stores lead-style timedeltas in `time` and the dates in `datetime`.
        ds = ds.assign_coords(time=ds["datetime"].values).drop_vars("datetime")
    return ds


def _long_name(name: str, variable: xr.DataArray) -> str:
    if (
        name == "z"
        and "level" not in variable.dims
        and "pressure_level" not in variable.dims
        and "isobaricInhPa" not in variable.dims
    ):
        return "geopotential_at_surface"
    return canonical.SHORT_NAMES.get(name, name)


def _levels_to_hpa(ds: xr.Dataset, source) -> xr.Dataset:
    if "level" not in ds.dims:
        return ds
    level = ds["level"]
    units = str(level.attrs.get("units", "")).lower()
    values = np.asarray(level.values, dtype=np.float64)
    if units == "pa" or (units == "" and values.max() > 1100):
        values = values / 100.0
    if not np.allclose(values, np.round(values)):
        raise DataError(f"{source}: pressure levels {values.tolist()} are not whole hPa")
    return ds.assign_coords(level=("level", np.round(values).astype(np.int32), {"units": "hPa"}))


def _sort_lat_lon(ds: xr.Dataset) -> xr.Dataset:
    lat = np.asarray(ds["lat"].values, dtype=np.float64)
    if lat.size > 1 and lat[0] > lat[-1]:
        ds = ds.isel(lat=slice(None, None, -1))  # a view, stays lazy
    lon = canonical.wrap_longitude(ds["lon"].values)
    order = np.argsort(lon, kind="stable")
    lon = lon[order]
    if lon.size > 1:
        # A regional box crossing 0 deg: start after the widest gap so the box stays
        # contiguous, with longitudes west of 0 deg negative (e.g. -10 .. 2).
        gaps = np.diff(np.concatenate([lon, lon[:1] + 360.0]))
        widest = int(np.argmax(gaps))
        if gaps[widest] > 1.5 * np.median(gaps) and widest != lon.size - 1:
            order = np.roll(order, -(widest + 1))
            lon = np.roll(lon, -(widest + 1))
            lon = np.where(lon >= lon[0], lon - 360.0, lon)
    ds = ds.isel(lon=order) if np.any(order != np.arange(lon.size)) else ds
    ds = ds.assign_coords(lon=("lon", lon, ds["lon"].attrs))
    ds["lat"] = ds["lat"].astype(np.float64)
    ds["lon"] = ds["lon"].astype(np.float64)
    ds["lat"].attrs.update(cf_coordinates.LATITUDE_ATTRIBUTES)
    ds["lon"].attrs.update(cf_coordinates.LONGITUDE_ATTRIBUTES)
    return ds


def _combine(pieces: list[tuple[Path, xr.Dataset]]) -> xr.Dataset:
    if len(pieces) == 1:
        return pieces[0][1]
    reference_path, reference = pieces[0]
    for path, ds in pieces[1:]:
        _require_same_grid(reference, ds, reference_path, path)
    groups: dict[tuple[str, ...], list[tuple[Path, xr.Dataset]]] = {}
    for path, ds in pieces:
        groups.setdefault(tuple(sorted(ds.data_vars)), []).append((path, ds))
    merged_groups = []
    for group in groups.values():
        if len(group) == 1:
            merged_groups.append(group[0][1])
            continue
        for path, ds in group:
            if "time" not in ds.dims:
                raise DataError(
                    f"{path}: holds the same variables as another input file but has "
                    "no time dimension to concatenate along"
                )
        group.sort(key=lambda item: item[1]["time"].values[0])
        combined = xr.concat(
            [ds for _, ds in group],
            dim="time",
            data_vars="all",
            coords="minimal",
            compat="override",
            join="exact",
        )
        combined.attrs[SOURCES_ATTR] = json.dumps([str(p) for p, _ in group])
        merged_groups.append(combined)
    try:
        merged = xr.merge(merged_groups, join="exact", compat="override", combine_attrs="drop")
    except ValueError as error:
        names = ", ".join(str(p) for p, _ in pieces)
        raise DataError(
            f"input files {names} cover different times or levels and cannot be combined ({error})"
        ) from error
    merged.attrs[SOURCES_ATTR] = json.dumps([str(p) for p, _ in pieces])
    return merged


def _require_same_grid(a: xr.Dataset, b: xr.Dataset, path_a: Path, path_b: Path) -> None:
    for dim in ("lat", "lon"):
        va, vb = a[dim].values, b[dim].values
        if va.shape != vb.shape or not np.allclose(va, vb, atol=1e-6):
            raise DataError(
                f"{path_b}: its {dim} grid ({_describe_axis(vb)}) differs from that of {path_a} "
                f"({_describe_axis(va)}); all input files must share one grid"
            )


def _describe_axis(values: np.ndarray) -> str:
    if values.size < 2:
        return f"{values.size} point(s)"
    return f"{values.size} points, {values.min():g} to {values.max():g}"


def source_files(ds: xr.Dataset | xr.DataArray) -> list[str]:
    """The files a canonical dataset was opened from (for error messages)."""
    return json.loads(ds.attrs.get(SOURCES_ATTR, "[]"))


def describe_sources(paths: Sequence[str | Path]) -> str:
    """Short name for a set of input files in error messages."""
    paths = [str(path) for path in paths]
    if len(paths) <= 3:
        return ", ".join(paths)
    return f"{', '.join(paths[:3])} and {len(paths) - 3} more files"


def describe_source(data: xr.Dataset | xr.DataArray) -> str:
    """Where `data` came from, for error messages: the files the readers opened it from
    (else the file xarray opened it from), or "<dataset>" for data made in memory."""
    files = source_files(data) or ([data.encoding["source"]] if "source" in data.encoding else [])
    return describe_sources(files) if files else "<dataset>"
