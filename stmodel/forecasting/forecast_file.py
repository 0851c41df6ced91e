"""Forecast NetCDF or Zarr in the WeatherBench 2 layout, written lead by lead.

dims (time = init time, [realization = ensemble member,] prediction_timedelta, level,
latitude, longitude); surface variables lack level; one chunk per (init time, [member,]
lead). One template (:func:`forecast_template`) describes the layout; the NetCDF, Zarr
and in-memory sinks are all made from it. Callers write into a
temporary path (stmodel.atomic_files) so an interrupted forecast leaves no file or
store behind. Each lead goes to disk as it is written: nothing is kept per init time
or lead (the NetCDF chunk cache is off, since every chunk is written whole, once).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import netCDF4
import numpy as np
import xarray as xr

from stmodel.data import canonical, cf_coordinates
from stmodel.data.layout import VariableLayout
from stmodel.errors import UserError

FORMATS = {".nc": "NetCDF", ".zarr": "Zarr"}
DIVERGED_ATTR = "diverged_initial_times"


def forecast_format(path: str | Path, option: str = "--out") -> str:
    """ "NetCDF" or "Zarr", by the suffix of ``path``; UserError for any other suffix."""
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        accepted = ", ".join(f"{suffix} ({name})" for suffix, name in FORMATS.items())
        raise UserError(f"{option} {path}: expected a path ending in {accepted}")
    return fmt


def is_zarr_store(path: Path) -> bool:
    """Whether the folder ``path`` is a Zarr store (format 2 or 3), one a forecast may
    replace."""
    return any((Path(path) / marker).exists() for marker in ("zarr.json", ".zgroup", ".zattrs"))


# Which states a write holds: a slice of init times (a deterministic forecast), or
# (init time index, slice of members) in an ensemble's realization dimension.
Rows = slice | tuple[int, slice]


class ForecastSink(Protocol):
    """Where run_forecast puts each lead as soon as it exists."""

    def write(self, rows: Rows, lead_hours: int, upper: np.ndarray, surface: np.ndarray) -> None:
        """upper [state, level, lat, lon, var], surface [state, lat, lon, var]: the states
        ``rows`` names, at lead ``lead_hours``."""
        ...

    def mark_incomplete(self, reason: str, diverged: Sequence[str] = ()) -> None:
        """Global attributes ``incomplete`` (why) and ``diverged_initial_times`` (a JSON
        list of the initial times concerned, which `stmodel evaluate` leaves out)."""
        ...

    def close(self) -> None: ...


def write_lead(
    store,
    layout: VariableLayout,
    rows: Rows,
    lead: int,
    upper: np.ndarray,
    surface: np.ndarray,
) -> None:
    """One lead of a batch of states into every variable of `store` (a NetCDF file or a
    Zarr group: anything whose variables take `[init_slice, lead] = field`, or
    `[init, member_slice, lead] = field` in an ensemble).

    upper [batch, level, lat, lon, var], surface [batch, lat, lon, var].
    """
    index = (*rows, lead) if isinstance(rows, tuple) else (rows, lead)
    for i, name in enumerate(layout.upper_air):
        store[name][index] = upper[..., i]
    for i, name in enumerate(layout.surface):
        store[name][index] = surface[..., i]


def forecast_template(
    init_times: np.ndarray,
    lead_hours: Sequence[int],
    layout: VariableLayout,
    lat: np.ndarray,
    lon: np.ndarray,
    attrs: dict,
    members: int | None = None,
) -> xr.Dataset:
    """The forecast's schema as a lazy Dataset, the one description every sink is made from.

    dims (time, [realization,] prediction_timedelta, [level,] latitude, longitude): each
    data variable a lazy all-NaN dask array chunked one chunk per (init time, [member,]
    lead); coordinates decoded (datetime64 init times, timedelta64 leads) with their CF
    attributes, and ``encoding`` saying how each is stored (units, dtype, chunks, fill).
    ``realization`` (WeatherBench 2's member dimension, members 0..N-1) is there only when
    ``members`` is given, so a deterministic forecast keeps its layout.
    """
    coords = {
        "time": xr.Variable(
            "time",
            np.asarray(init_times, "datetime64[ns]"),
            {"standard_name": "forecast_reference_time", "long_name": "initialisation time"}
            | {"axis": "T"},
            {"units": cf_coordinates.time_units(), "calendar": cf_coordinates.CALENDAR}
            | {"dtype": np.dtype("float64")},
        ),
    }
    if members is not None:
        coords["realization"] = xr.Variable(
            "realization",
            np.arange(members, dtype=np.int32),
            {"standard_name": "realization", "long_name": "ensemble member"},
            {"dtype": np.dtype("int32")},
        )
    coords |= {
        "prediction_timedelta": xr.Variable(
            "prediction_timedelta",
            np.asarray(lead_hours, np.int64).astype("timedelta64[h]").astype("timedelta64[ns]"),
            {"standard_name": "forecast_period", "long_name": "lead time"},
            {"units": "hours", "dtype": np.dtype("int32")},
        ),
        "level": xr.Variable(
            "level",
            np.asarray(layout.levels, np.int32),
            dict(cf_coordinates.LEVEL_ATTRIBUTES),
            {"dtype": np.dtype("int32")},
        ),
        "latitude": xr.Variable(
            "latitude",
            np.asarray(lat, np.float64),
            dict(cf_coordinates.LATITUDE_ATTRIBUTES),
            {"dtype": np.dtype("float64")},
        ),
        "longitude": xr.Variable(
            "longitude",
            np.asarray(lon, np.float64),
            dict(cf_coordinates.LONGITUDE_ATTRIBUTES),
            {"dtype": np.dtype("float64")},
        ),
    }
    leading = ("time", "prediction_timedelta")
    if members is not None:
        leading = ("time", "realization", "prediction_timedelta")
    sizes = {name: variable.size for name, variable in coords.items()}
    data_vars = {}
    for names, grid in ((layout.upper_air, ("level",)), (layout.surface, ())):
        dims = (*leading, *grid, "latitude", "longitude")
        shape = tuple(sizes[d] for d in dims)
        chunks = tuple(1 if d in leading else sizes[d] for d in dims)
        for name in names:
            data_vars[name] = xr.Variable(
                dims,
                _lazy_nan(shape, chunks),
                {"units": canonical.UNITS.get(name, ""), "long_name": name.replace("_", " ")},
                # NaN where nothing was written (a forecast stopped by non-finite values).
                {"dtype": np.dtype("float32"), "_FillValue": np.float32(np.nan)}
                | {"chunks": chunks},
            )
    return xr.Dataset(
        data_vars,
        coords,
        {"Conventions": "CF-1.8", **{k: str(v) for k, v in attrs.items()}},
    )


def _encoded_values(variable: xr.Variable) -> np.ndarray:
    """A coordinate's values as stored: datetime64 as hours since 1970, timedelta64 as
    hours, as the template's encoding says."""
    values = variable.values
    if np.issubdtype(values.dtype, np.datetime64):
        values = cf_coordinates.hours_since_epoch(values)
    elif np.issubdtype(values.dtype, np.timedelta64):
        values = values / np.timedelta64(1, "h")
    return np.asarray(values).astype(variable.encoding["dtype"])


def _netcdf_from_template(nc: netCDF4.Dataset, template: xr.Dataset) -> None:
    """Define the NetCDF ``nc`` as ``template`` describes it and write its coordinates."""
    nc.setncatts(template.attrs)
    for name, variable in template.coords.items():
        attrs = dict(variable.attrs)
        encoding = variable.encoding
        attrs |= {k: encoding[k] for k in ("units", "calendar") if k in encoding}
        if np.issubdtype(variable.dtype, np.timedelta64):
            attrs["dtype"] = "timedelta64[ns]"  # tells xarray to decode it as a timedelta
        values = _encoded_values(variable)
        cf_coordinates.add_coordinate(nc, name, values.dtype.str[1:], values, attrs)
    for name, variable in template.data_vars.items():
        encoding = variable.encoding
        var = nc.createVariable(
            name,
            encoding["dtype"].str[1:],
            variable.dims,
            chunksizes=encoding["chunks"],
            fill_value=encoding["_FillValue"],
        )
        # Every chunk is written whole, once: a cache would only hold written chunks.
        var.set_var_chunk_cache(size=0, nelems=1)
        var.setncatts(variable.attrs)


class ForecastWriter:
    """A ForecastSink writing the NetCDF file at ``path``, laid out as
    :func:`forecast_template` says (``members``: None for a deterministic forecast, else
    the number of ensemble members)."""

    def __init__(
        self,
        path: Path,
        init_times: np.ndarray,
        lead_hours: Sequence[int],
        layout: VariableLayout,
        lat: np.ndarray,
        lon: np.ndarray,
        attrs: dict,
        members: int | None = None,
    ):
        self.layout = layout
        self.lead_index = {int(h): i for i, h in enumerate(lead_hours)}
        template = forecast_template(init_times, lead_hours, layout, lat, lon, attrs, members)
        self._nc = self._create(path)
        _netcdf_from_template(self._nc, template)

    def _create(self, path: Path) -> netCDF4.Dataset:
        return netCDF4.Dataset(path, "w", format="NETCDF4")

    def write(self, rows: Rows, lead_hours: int, upper: np.ndarray, surface: np.ndarray) -> None:
        write_lead(self._nc, self.layout, rows, self.lead_index[int(lead_hours)], upper, surface)

    def mark_incomplete(self, reason: str, diverged: Sequence[str] = ()) -> None:
        self._nc.setncatts({"incomplete": reason, DIVERGED_ATTR: json.dumps(list(diverged))})

    def close(self) -> None:
        self._nc.close()


class ForecastInMemory(ForecastWriter):
    """A ForecastSink keeping the forecast in memory: ForecastWriter's NetCDF, written into
    memory instead of a file, so :meth:`dataset` is exactly what xarray opens from the file
    ``stmodel forecast`` writes for the same forecast (variables, coordinates, attributes)."""

    def __init__(
        self,
        init_times: np.ndarray,
        lead_hours: Sequence[int],
        layout: VariableLayout,
        lat: np.ndarray,
        lon: np.ndarray,
        attrs: dict,
        members: int | None = None,
    ):
        super().__init__(
            Path("forecast.nc"), init_times, lead_hours, layout, lat, lon, attrs, members
        )

    def _create(self, path: Path) -> netCDF4.Dataset:
        return netCDF4.Dataset(path, "w", format="NETCDF4", diskless=True, persist=False)

    def close(self) -> None:
        """Nothing to do: :meth:`dataset` reads the forecast, then frees the memory."""

    def dataset(self) -> xr.Dataset:
        """The forecast, loaded and decoded (datetime64 init times, timedelta64 leads)."""
        try:
            dataset = xr.open_dataset(xr.backends.NetCDF4DataStore(self._nc)).load()
        finally:
            self._nc.close()
        for variable in dataset.variables.values():
            variable.encoding.pop("source", None)
        return dataset


class ForecastZarrWriter:
    """A ForecastSink writing the Zarr store at ``path`` (a folder, made here): the
    variables, coordinates, attributes and chunks of :func:`forecast_template`, as the
    NetCDF has them, so xarray opens both alike. The store's layout is made up front;
    each lead is then written into its chunks."""

    def __init__(
        self,
        path: Path,
        init_times: np.ndarray,
        lead_hours: Sequence[int],
        layout: VariableLayout,
        lat: np.ndarray,
        lon: np.ndarray,
        attrs: dict,
        members: int | None = None,
    ):
        import zarr

        self.layout = layout
        self.path = Path(path)
        self.lead_index = {int(h): i for i, h in enumerate(lead_hours)}
        template = forecast_template(init_times, lead_hours, layout, lat, lon, attrs, members)
        # Coordinates and metadata now, the arrays' chunks as each lead comes; Zarr format 2
        # (consolidated metadata is part of it), which WeatherBench 2 tools read.
        template.to_zarr(self.path, mode="w", compute=False, consolidated=True, zarr_format=2)
        self._group = zarr.open_group(self.path, mode="r+")

    def write(self, rows: Rows, lead_hours: int, upper: np.ndarray, surface: np.ndarray) -> None:
        lead = self.lead_index[int(lead_hours)]
        write_lead(self._group, self.layout, rows, lead, upper, surface)

    def mark_incomplete(self, reason: str, diverged: Sequence[str] = ()) -> None:
        self._group.attrs.update({"incomplete": reason, DIVERGED_ATTR: json.dumps(list(diverged))})

    def close(self) -> None:
        import zarr

        # The attributes may have changed since the consolidated metadata was written.
        zarr.consolidate_metadata(self.path)


def _lazy_nan(shape: tuple[int, ...], chunks: tuple[int, ...]):
    import dask.array

    return dask.array.full(shape, np.nan, dtype=np.float32, chunks=chunks)
