"""Forecast NetCDF in the WeatherBench 2 layout, written lead by lead.

dims (time = init time, prediction_timedelta, level, latitude, longitude);
surface variables lack level. Callers write into a temporary path
(stmodel.atomic_files) so an interrupted forecast leaves no file behind.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import netCDF4
import numpy as np
import xarray as xr

from stmodel.data import canonical, cf_coordinates
from stmodel.data.layout import VariableLayout


class ForecastSink(Protocol):
    """Where run_forecast puts each lead as soon as it exists."""

    def write(
        self, init_slice: slice, lead_hours: int, upper: np.ndarray, surface: np.ndarray
    ) -> None: ...

    def mark_incomplete(self, reason: str) -> None: ...

    def close(self) -> None: ...


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
        var.setncatts({"units": canonical.UNITS.get(name, ""), "long_name": name.replace("_", " ")})

    def write(
        self, init_slice: slice, lead_hours: int, upper: np.ndarray, surface: np.ndarray
    ) -> None:
        """upper [batch, level, lat, lon, var], surface [batch, lat, lon, var]."""
        lead = self.lead_index[int(lead_hours)]
        for i, name in enumerate(self.layout.upper_air):
            self._nc[name][init_slice, lead] = upper[..., i]
        for i, name in enumerate(self.layout.surface):
            self._nc[name][init_slice, lead] = surface[..., i]

    def mark_incomplete(self, reason: str) -> None:
        self._nc.setncattr("incomplete", reason)

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
