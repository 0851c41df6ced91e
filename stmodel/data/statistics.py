"""Normalisation statistics and climatology from a training period, out of core.

Two NetCDF files come out:

* ``stats.nc``: every variable by its canonical name with a leading
  ``statistic`` dimension (``mean``, ``std``, ``diff_std``) then ``level`` for
  upper-air variables. Means and stds are over time, lat and lon (unweighted);
  ``diff_std`` is the std of x(t + dt) - x(t), what the model's residual is
  scaled by.
* ``climatology.nc``: the mean state by day-of-year and hour when the period
  spans at least two years (smoothed over a window of days), else by hour of
  day, else a time mean; the kind is in the ``climatology_kind`` attribute.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from tqdm.auto import tqdm

from stmodel.atomic_files import atomic_path, make_folder
from stmodel.data.layout import NormalisationStats, VariableLayout
from stmodel.data.readers import describe_source, source_files
from stmodel.errors import DataError

STATS_FILE = "stats.nc"
CLIMATOLOGY_FILE = "climatology.nc"
FINGERPRINT_ATTR = "stmodel_fingerprint"
# Time dims of each climatology kind, before the grid dims.
KIND_DIMS = {"dayofyear_hour": ("dayofyear", "hour"), "hour": ("hour",), "time_mean": ()}


@dataclasses.dataclass(frozen=True)
class StatisticsRequest:
    start: str  # first time of the training period (inclusive), ISO
    end: str  # last time (inclusive), ISO
    dt_hours: int = 6  # model time step for diff_std
    smoothing_days: int = 31  # window of the day-of-year climatology smoothing
    time_chunk: int = 64  # time steps read at once

    def fingerprint(self, ds: xr.Dataset, variables: Sequence[str]) -> str:
        files = []
        for name in source_files(ds):
            stat = os.stat(name)
            files.append([os.path.abspath(name), stat.st_size, int(stat.st_mtime)])
        params = dataclasses.asdict(self)
        params.pop("time_chunk")
        return json.dumps(
            {"request": params, "variables": sorted(variables), "files": files}, sort_keys=True
        )


def training_times(ds: xr.Dataset, request: StatisticsRequest) -> xr.Dataset:
    period = ds.sel(time=slice(request.start, request.end))
    if period.sizes.get("time", 0) < 2:
        raise DataError(
            f"{describe_source(ds)}: fewer than 2 times between {request.start} and "
            f"{request.end} (data covers {_span(ds)}); choose a training period "
            "inside the data"
        )
    return period


def compute_statistics(
    ds: xr.Dataset,
    request: StatisticsRequest,
    variables: Sequence[str] | None = None,
    progress: bool = True,
) -> tuple[xr.Dataset, xr.Dataset]:
    """Return (stats, climatology) for the training period of a canonical dataset."""
    variables = list(variables or [v for v in ds.data_vars if "time" in ds[v].dims])
    period = training_times(ds, request)
    times = period["time"].values
    lag = _lag_steps(times, request.dt_hours, ds)
    kind = _climatology_kind(times)
    # Dask blocks of time_chunk steps: the reductions stream through the file.
    period = period.chunk(time=request.time_chunk)
    # Index pairs (t, t + lag) exactly dt apart, for the std of dt-differences.
    first = np.arange(len(times) - lag)
    first = first[times[first + lag] - times[first] == np.timedelta64(request.dt_hours, "h")]
    if first.size == 0:
        raise DataError("no pairs of times dt apart inside the training period")
    stats_vars, clim_vars = {}, {}
    for name in tqdm(variables, desc="statistics", unit="variable", disable=not progress):
        var = period[name]
        spatial = [d for d in var.dims if d in ("time", "lat", "lon")]
        values = var.astype(np.float64)
        difference = var.isel(time=first + lag).drop_vars("time") - var.isel(time=first).drop_vars(
            "time"
        )
        statistics = xr.concat(
            [
                values.mean(spatial, skipna=False),
                values.std(spatial, skipna=False),
                difference.astype(np.float64).std(spatial, skipna=False),
            ],
            dim="statistic",
        )
        climatology = _climatology(values, kind, request.smoothing_days)
        try:
            statistics, climatology = statistics.compute(), climatology.compute()
        except (OSError, RuntimeError, ValueError) as error:
            raise DataError(
                f"{describe_source(ds)}: reading variable {name} failed ({error}); "
                "the file may be truncated or corrupt"
            ) from error
        level_dims = tuple(d for d in var.dims if d == "level")
        stats_vars[name] = (
            ("statistic",) + level_dims,
            statistics.transpose("statistic", *level_dims).values.astype(np.float32),
            {"units": var.attrs.get("units", "")},
        )
        clim_dims = KIND_DIMS[kind] + var.dims[1:]
        clim_vars[name] = (
            clim_dims,
            climatology.transpose(*clim_dims).values.astype(np.float32),
            var.attrs,
        )
    coords = {"statistic": ["mean", "std", "diff_std"]}
    if "level" in ds.dims:
        coords["level"] = ds["level"].values
    attrs = {
        "training_period": f"{request.start}/{request.end}",
        "dt_hours": request.dt_hours,
        "climatology_kind": kind,
        FINGERPRINT_ATTR: request.fingerprint(ds, variables),
    }
    stats = xr.Dataset(stats_vars, coords=coords, attrs=attrs)
    clim_coords = {d: ds[d].values for d in ("level", "lat", "lon") if d in ds.dims}
    clim_coords.update({d: climatology[d].values for d in KIND_DIMS[kind]})
    climatology = xr.Dataset(clim_vars, coords=clim_coords, attrs=attrs)
    return stats, climatology


def _lag_steps(times: np.ndarray, dt_hours: int, ds: xr.Dataset) -> int:
    step = np.median(np.diff(times)) / np.timedelta64(1, "h")
    lag = dt_hours / step
    if step <= 0 or abs(lag - round(lag)) > 1e-6 or round(lag) < 1:
        raise DataError(
            f"{describe_source(ds)}: time step of the data is {step:g} h, which does not "
            f"divide the model time step of {dt_hours} h"
        )
    return int(round(lag))


def _climatology_kind(times: np.ndarray) -> str:
    """By day of year and hour from two years of data on, else by hour of day, else a mean."""
    hours = pd.DatetimeIndex(times).hour
    if (times[-1] - times[0]) / np.timedelta64(1, "D") >= 728:  # give or take the last day
        return "dayofyear_hour"
    return "hour" if len(np.unique(hours)) > 1 else "time_mean"


def _climatology(values: xr.DataArray, kind: str, smoothing_days: int) -> xr.DataArray:
    """The mean state of ``values`` [time, ...] by the time dims of ``kind`` (lazy)."""
    # skipna=False throughout: a NaN in the data must show, not bias the mean.
    if kind == "time_mean":
        return values.mean("time", skipna=False)
    if kind == "hour":
        return values.groupby("time.hour").mean("time", skipna=False)
    days = np.arange(1, 367)

    def by_day(field: xr.DataArray, reduce: str) -> xr.DataArray:
        grouped = field.groupby("time.dayofyear")
        return getattr(grouped, reduce)("time", skipna=False).reindex(dayofyear=days, fill_value=0)

    total = values.groupby("time.hour").map(by_day, reduce="sum")  # [hour, dayofyear, ...]
    count = (
        xr.ones_like(values["time"], dtype=np.float64)
        .groupby("time.hour")
        .map(by_day, reduce="sum")
    )  # [hour, dayofyear]
    # Circular smoothing over day of year; dividing smoothed sums by smoothed counts
    # fills days absent from the data (day 366 in non-leap years).
    half = smoothing_days // 2
    window = range(-half, half + 1)
    smoothed_total = sum(total.roll(dayofyear=shift) for shift in window)
    smoothed_count = sum(count.roll(dayofyear=shift) for shift in window)
    return smoothed_total / smoothed_count


def _span(ds: xr.Dataset) -> str:
    t = ds["time"].values
    return f"{np.datetime_as_string(t[0], 'h')} to {np.datetime_as_string(t[-1], 'h')}"


def write_netcdf(ds: xr.Dataset, path: Path) -> None:
    """Write NetCDF whole or not at all."""
    with atomic_path(path) as temporary:
        ds.to_netcdf(temporary)


def statistics_up_to_date(out_dir: Path, fingerprint: str) -> bool:
    paths = [Path(out_dir) / STATS_FILE, Path(out_dir) / CLIMATOLOGY_FILE]
    if not all(p.exists() for p in paths):
        return False
    for p in paths:
        with xr.open_dataset(p) as existing:
            if existing.attrs.get(FINGERPRINT_ATTR) != fingerprint:
                return False
    return True


def saved_fingerprint(out_dir: Path) -> str | None:
    """The fingerprint of the statistics in out_dir, None where there are none to read."""
    try:
        with xr.open_dataset(Path(out_dir) / STATS_FILE) as existing:
            return existing.attrs.get(FINGERPRINT_ATTR)
    except (OSError, ValueError):
        return None


def fingerprint_differences(saved: str, mine: str) -> str:
    """In words, what differs between two fingerprints of StatisticsRequest.fingerprint."""
    try:
        saved_parts, my_parts = json.loads(saved), json.loads(mine)
    except ValueError:
        return "statistics of an unknown origin"
    differs = []
    if saved_parts.get("request") != my_parts.get("request"):
        differs.append("the training period or time step")
    if saved_parts.get("variables") != my_parts.get("variables"):
        differs.append(
            f"the variables: the statistics' {', '.join(saved_parts.get('variables', []))}, "
            f"the data's {', '.join(my_parts.get('variables', []))}"
        )
    if saved_parts.get("files") != my_parts.get("files"):
        had = ", ".join(f[0] for f in saved_parts.get("files", []))
        differs.append(f"the files (or their sizes or times of change): the statistics' {had}")
    return "; ".join(differs) or "statistics of an unknown origin"


def only_files_differ(saved: str, mine: str) -> bool:
    """Whether two fingerprints differ in the files' descriptions alone (the same period,
    time step and variables)."""
    try:
        saved_parts, my_parts = json.loads(saved), json.loads(mine)
    except ValueError:
        return False
    return all(saved_parts.get(k) == my_parts.get(k) for k in ("request", "variables"))


def compute_or_reuse(
    ds: xr.Dataset,
    request: StatisticsRequest,
    out_dir: Path,
    variables: Sequence[str] | None = None,
    progress: bool = True,
) -> tuple[Path, Path, bool]:
    """Compute stats.nc and climatology.nc into out_dir unless consistent ones exist.

    Returns (stats path, climatology path, reused).
    """
    variables = list(variables or [v for v in ds.data_vars if "time" in ds[v].dims])
    out_dir = make_folder(out_dir, "statistics folder")
    stats_path, clim_path = out_dir / STATS_FILE, out_dir / CLIMATOLOGY_FILE
    if statistics_up_to_date(out_dir, request.fingerprint(ds, variables)):
        return stats_path, clim_path, True
    stats, climatology = compute_statistics(ds, request, variables, progress)
    write_netcdf(climatology, clim_path)
    write_netcdf(stats, stats_path)
    return stats_path, clim_path, False


def normalisation_stats(stats: xr.Dataset, layout: VariableLayout) -> NormalisationStats:
    """Pick the statistics of the layout's channels, in its order."""

    def upper(statistic):
        return np.stack(
            [
                stats[v].sel(statistic=statistic, level=list(layout.levels)).values
                for v in layout.upper_air
            ],
            axis=-1,
        ).astype(np.float32)  # [level, var]

    def surface(statistic):
        return np.array(
            [float(stats[v].sel(statistic=statistic)) for v in layout.surface], np.float32
        )  # [var]

    missing = [v for v in layout.upper_air + layout.surface if v not in stats.data_vars]
    if missing:
        raise DataError(
            f"statistics file lacks variable(s) {', '.join(missing)}; recompute "
            "them with `stmodel data stats` for the data you train on"
        )
    return NormalisationStats(
        upper("mean"),
        upper("std"),
        upper("diff_std"),
        surface("mean"),
        surface("std"),
        surface("diff_std"),
    )
