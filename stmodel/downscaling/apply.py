"""`stmodel downscale apply`: a coarse analysis or forecast -> fine fields over the region.

An analysis (canonical form: time, level, lat, lon) gives a canonical NetCDF;
a forecast in the WeatherBench 2 layout (time = init time,
prediction_timedelta, level, latitude, longitude), as `stmodel forecast`
writes, gives a forecast file of the same layout, each lead downscaled at its
valid time. Longitudes of the output are those of the region, contiguous
(e.g. -10 .. 2 for a box crossing 0 deg). Files are written whole or not at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import netCDF4
import numpy as np
import xarray as xr
from tqdm.auto import tqdm

from stmodel.atomic_files import atomic_path
from stmodel.data import canonical, cf_coordinates
from stmodel.data.readers import describe_source, open_canonical
from stmodel.data.validation import require_variables
from stmodel.downscaling.baselines import GridInterpolator
from stmodel.downscaling.checkpoint import DownscalingCheckpoint
from stmodel.downscaling.data import MARGIN_CELLS, grid_spacing
from stmodel.downscaling.evaluate import check_coarse_grid
from stmodel.downscaling.inputs import time_channels
from stmodel.downscaling.region import select_region
from stmodel.errors import DataError
from stmodel.forecasting.forecast_file import ForecastWriter

LEAD_DIM = "prediction_timedelta"


class AnalysisWriter:
    """Canonical NetCDF (time, level, lat, lon), written a batch of times at a time."""

    def __init__(
        self, path: Path, times: np.ndarray, checkpoint: DownscalingCheckpoint, attrs: dict
    ):
        layout = checkpoint.layout
        self.layout = layout
        lat, lon = checkpoint.grids["fine_lat"], checkpoint.grids["fine_lon"]
        nc = self._nc = netCDF4.Dataset(path, "w", format="NETCDF4")
        nc.setncatts({"Conventions": "CF-1.8", **{k: str(v) for k, v in attrs.items()}})
        cf_coordinates.add_time(nc, cf_coordinates.hours_since_epoch(times))
        if layout.upper_air:
            cf_coordinates.add_level(nc, layout.levels)
        cf_coordinates.add_grid(nc, lat, lon)
        for name in layout.upper_air:
            self._variable(name, ("time", "level", "lat", "lon"))
        for name in layout.surface:
            self._variable(name, ("time", "lat", "lon"))

    def _variable(self, name, dims):
        variable = self._nc.createVariable(name, "f4", dims, zlib=True, complevel=1)
        variable.setncatts(
            {"units": canonical.UNITS.get(name, ""), "long_name": name.replace("_", " ")}
        )

    def write(self, time_slice: slice, upper: np.ndarray, surface: np.ndarray) -> None:
        """upper [batch, level, lat, lon, var], surface [batch, lat, lon, var]."""
        for i, name in enumerate(self.layout.upper_air):
            self._nc[name][time_slice] = upper[..., i]
        for i, name in enumerate(self.layout.surface):
            self._nc[name][time_slice] = surface[..., i]

    def close(self) -> None:
        self._nc.close()


class Downscaler:
    """The checkpoint's model over coarse states of any times (jitted, batched)."""

    def __init__(self, checkpoint: DownscalingCheckpoint, coarse: xr.Dataset):
        self.checkpoint = checkpoint
        layout = checkpoint.layout
        where = describe_source(coarse)
        require_variables(coarse, layout.upper_air, layout.levels)
        require_variables(coarse, layout.surface)
        spacing = max(grid_spacing(coarse["lat"].values), grid_spacing(coarse["lon"].values))
        self.coarse = select_region(coarse, checkpoint.box, margin=MARGIN_CELLS * spacing)
        check_coarse_grid(checkpoint, self.coarse["lat"].values, self.coarse["lon"].values, where)
        self.where = where
        if layout.upper_air:
            self.coarse = self.coarse.sel(level=list(layout.levels))
        self.interpolate = GridInterpolator.between(
            self.coarse["lat"].values,
            self.coarse["lon"].values,
            checkpoint.grids["network_lat"],
            checkpoint.grids["network_lon"],
            checkpoint.config.interpolation,
            where=where,
        )
        self._predict = jax.jit(checkpoint.fine_fields)
        self._static = jnp.asarray(checkpoint.static)

    def read(self, ds: xr.Dataset) -> tuple[np.ndarray, np.ndarray]:
        """Coarse upper [time, level, lat, lon, var] and surface [time, lat, lon, var] of `ds`
        (a time slice of self.coarse)."""
        layout = self.checkpoint.layout
        n_time, n_lat, n_lon = ds.sizes["time"], ds.sizes["lat"], ds.sizes["lon"]

        def load(name):
            values = np.asarray(ds[name].values, np.float32)
            if not np.isfinite(values).all():
                raise DataError(
                    f"{self.where}: variable {name} has NaN or Inf values; expected "
                    "finite values everywhere"
                )
            return values

        upper = (
            np.stack([load(v) for v in layout.upper_air], axis=-1)
            if layout.upper_air
            else np.zeros((n_time, 0, n_lat, n_lon, 0), np.float32)
        )
        surface = (
            np.stack([load(v) for v in layout.surface], axis=-1)
            if layout.surface
            else np.zeros((n_time, n_lat, n_lon, 0), np.float32)
        )
        return upper, surface

    def __call__(
        self, upper: np.ndarray, surface: np.ndarray, valid_times: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Coarse fields at `valid_times` -> fine upper [time, level, lat, lon, var], surface."""
        network_lat = self.checkpoint.grids["network_lat"]
        network_lon = self.checkpoint.grids["network_lon"]
        time = time_channels(valid_times, network_lon, len(network_lat))
        fine = self._predict(
            self.checkpoint.params,
            jnp.asarray(self.interpolate.channels_last(upper)),
            jnp.asarray(self.interpolate.channels_last(surface)),
            jnp.asarray(time),
            self._static,
        )
        return np.asarray(fine[0]), np.asarray(fine[1])


def _attrs(
    checkpoint_dir: str | Path,
    coarse_paths: Sequence[str | Path],
    checkpoint: DownscalingCheckpoint,
) -> dict:
    return {
        "title": "stmodel downscaled fields",
        "source": f"stmodel downscale apply, checkpoint {Path(checkpoint_dir).resolve()} "
        f"(step {checkpoint.step}, mode {checkpoint.config.mode})",
        "coarse_input": ", ".join(str(p) for p in coarse_paths),
        "region": checkpoint.box.text(),
    }


def downscale_file(
    checkpoint_dir: str | Path,
    coarse_paths: Sequence[str | Path],
    out: str | Path,
    *,
    batch_size: int = 16,
    progress: bool = True,
) -> Path:
    """Downscale an analysis or a WB2-layout forecast into `out` (see the module docstring)."""
    checkpoint = DownscalingCheckpoint.load(checkpoint_dir)
    coarse = open_canonical(coarse_paths)
    downscaler = Downscaler(checkpoint, coarse)
    attrs = _attrs(checkpoint_dir, coarse_paths, checkpoint)
    out = Path(out)
    source = downscaler.coarse
    init_times = source["time"].values
    if LEAD_DIM in source.dims:
        leads = source[LEAD_DIM].values
        lead_hours = [int(round(lead / np.timedelta64(1, "h"))) for lead in leads]
        jobs = [
            (k, start) for k in range(len(leads)) for start in range(0, len(init_times), batch_size)
        ]
        with atomic_path(out) as temporary:
            writer = ForecastWriter(
                temporary,
                init_times,
                lead_hours,
                checkpoint.layout,
                checkpoint.grids["fine_lat"],
                checkpoint.grids["fine_lon"],
                attrs,
            )
            try:
                for k, start in tqdm(jobs, desc="downscaling", unit="batch", disable=not progress):
                    part = source.isel({LEAD_DIM: k, "time": slice(start, start + batch_size)})
                    valid = part["time"].values + leads[k]
                    upper, surface = downscaler(*downscaler.read(part), valid)
                    writer.write(slice(start, start + len(valid)), lead_hours[k], upper, surface)
            finally:
                writer.close()
        return out
    with atomic_path(out) as temporary:
        writer = AnalysisWriter(temporary, init_times, checkpoint, attrs)
        try:
            for start in tqdm(
                range(0, len(init_times), batch_size),
                desc="downscaling",
                unit="batch",
                disable=not progress,
            ):
                part = source.isel(time=slice(start, start + batch_size))
                upper, surface = downscaler(*downscaler.read(part), part["time"].values)
                writer.write(slice(start, start + len(part["time"])), upper, surface)
        finally:
            writer.close()
    return out
