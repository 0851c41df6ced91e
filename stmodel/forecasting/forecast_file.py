"""Forecast NetCDF or Zarr in the WeatherBench 2 layout, written lead by lead.

dims (time = init time, prediction_timedelta, level, latitude, longitude);
surface variables lack level; one chunk per (init time, lead). Callers write into a
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


class ForecastSink(Protocol):
    """Where run_forecast puts each lead as soon as it exists."""

    def write(
        self, init_slice: slice, lead_hours: int, upper: np.ndarray, surface: np.ndarray
    ) -> None: ...

    def mark_incomplete(self, reason: str, diverged: Sequence[str] = ()) -> None:
        """Global attributes ``incomplete`` (why) and ``diverged_initial_times`` (a JSON
        list of the initial times concerned, which `stmodel evaluate` leaves out)."""
        ...

    def close(self) -> None: ...


def write_lead(
    store,
    layout: VariableLayout,
    init_slice: slice,
    lead: int,
    upper: np.ndarray,
    surface: np.ndarray,
) -> None:
    """One lead of a batch of initial times into every variable of `store` (a NetCDF file or
    a Zarr group: anything whose variables take `[init_slice, lead] = field`).

    upper [batch, level, lat, lon, var], surface [batch, lat, lon, var].
    """
    for i, name in enumerate(layout.upper_air):
        store[name][init_slice, lead] = upper[..., i]
    for i, name in enumerate(layout.surface):
        store[name][init_slice, lead] = surface[..., i]


class ForecastWriter:
    """A ForecastSink writing the NetCDF file at ``path``."""

    def __init__(
        self,
        path: Path,
        init_times: np.ndarray,
        lead_hours: Sequence[int],
        layout: VariableLayout,
        lat: np.ndarray,
        lon: np.ndarray,
        attrs: dict,
    ):
        self.layout = layout
        self.lead_index = {int(h): i for i, h in enumerate(lead_hours)}
        nc = self._nc = self._create(path)
        nc.setncatts({"Conventions": "CF-1.8", **{k: str(v) for k, v in attrs.items()}})
        n_lat, n_lon = len(lat), len(lon)
        cf_coordinates.add_time(
            nc,
            cf_coordinates.hours_since_epoch(init_times),
            standard_name="forecast_reference_time",
            long_name="initialisation time",
        )
        cf_coordinates.add_coordinate(
            nc,
            "prediction_timedelta",
            "i4",
            np.asarray(lead_hours, np.int32),
            {
                "units": "hours",
                "standard_name": "forecast_period",
                "long_name": "lead time",
                "dtype": "timedelta64[ns]",
            },  # tells xarray to decode it as a timedelta
        )
        cf_coordinates.add_level(nc, layout.levels)
        cf_coordinates.add_grid(nc, lat, lon, names=("latitude", "longitude"))
        for name in layout.upper_air:
            self._variable(
                name,
                ("time", "prediction_timedelta", "level", "latitude", "longitude"),
                (1, 1, len(layout.levels), n_lat, n_lon),
            )
        for name in layout.surface:
            self._variable(
                name,
                ("time", "prediction_timedelta", "latitude", "longitude"),
                (1, 1, n_lat, n_lon),
            )

    def _create(self, path: Path) -> netCDF4.Dataset:
        return netCDF4.Dataset(path, "w", format="NETCDF4")

    def _variable(self, name, dims, chunks):
        # NaN where nothing was written (a forecast stopped by non-finite values).
        var = self._nc.createVariable(
            name, "f4", dims, chunksizes=chunks, fill_value=np.float32(np.nan)
        )
        # Every chunk is written whole, once: a cache would only hold written chunks.
        var.set_var_chunk_cache(size=0, nelems=1)
        var.setncatts({"units": canonical.UNITS.get(name, ""), "long_name": name.replace("_", " ")})

    def write(
        self, init_slice: slice, lead_hours: int, upper: np.ndarray, surface: np.ndarray
    ) -> None:
        write_lead(
            self._nc, self.layout, init_slice, self.lead_index[int(lead_hours)], upper, surface
        )

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
    ):
        super().__init__(Path("forecast.nc"), init_times, lead_hours, layout, lat, lon, attrs)

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
    """A ForecastSink writing the Zarr store at ``path`` (a folder, made here): the same
    variables, coordinates, attributes and chunks as ForecastWriter's NetCDF, so xarray
    opens both alike. The store's layout is made up front from ForecastWriter's (empty)
    NetCDF; each lead is then written into its chunks."""

    def __init__(
        self,
        path: Path,
        init_times: np.ndarray,
        lead_hours: Sequence[int],
        layout: VariableLayout,
        lat: np.ndarray,
        lon: np.ndarray,
        attrs: dict,
    ):
        import zarr

        self.layout = layout
        self.path = Path(path)
        self.lead_index = {int(h): i for i, h in enumerate(lead_hours)}
        skeleton = ForecastInMemory(init_times, lead_hours, layout, lat, lon, attrs)
        try:
            template = xr.open_dataset(xr.backends.NetCDF4DataStore(skeleton._nc))
            template = template.drop_vars(list(template.data_vars)).load()
            chunks = {"time": 1, "prediction_timedelta": 1}
            for name in (*layout.upper_air, *layout.surface):
                variable = skeleton._nc[name]
                shape = variable.shape
                nan = _lazy_nan(shape, (1, 1, *shape[2:]))
                template[name] = xr.DataArray(nan, dims=variable.dimensions)
                template[name].attrs.update(variable.__dict__)
                template[name].attrs.pop("_FillValue", None)
                template[name].encoding = {
                    "dtype": "float32",
                    "_FillValue": np.float32(np.nan),
                    "chunks": tuple(chunks.get(d, n) for d, n in zip(variable.dimensions, shape)),
                }
        finally:
            skeleton._nc.close()
        for variable in template.variables.values():
            variable.encoding.pop("source", None)
        # Coordinates and metadata now, the arrays' chunks as each lead comes; Zarr format 2
        # (consolidated metadata is part of it), which WeatherBench 2 tools read.
        template.to_zarr(self.path, mode="w", compute=False, consolidated=True, zarr_format=2)
        self._group = zarr.open_group(self.path, mode="r+")

    def write(
        self, init_slice: slice, lead_hours: int, upper: np.ndarray, surface: np.ndarray
    ) -> None:
        lead = self.lead_index[int(lead_hours)]
        write_lead(self._group, self.layout, init_slice, lead, upper, surface)

    def mark_incomplete(self, reason: str, diverged: Sequence[str] = ()) -> None:
        self._group.attrs.update({"incomplete": reason, DIVERGED_ATTR: json.dumps(list(diverged))})

    def close(self) -> None:
        import zarr

        # The attributes may have changed since the consolidated metadata was written.
        zarr.consolidate_metadata(self.path)


def _lazy_nan(shape: tuple[int, ...], chunks: tuple[int, ...]):
    import dask.array

    return dask.array.full(shape, np.nan, dtype=np.float32, chunks=chunks)
