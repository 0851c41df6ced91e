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
import xarray as xr
from tqdm.auto import tqdm

from stmodel.atomic_files import atomic_path, make_folder
from stmodel.data.layout import NormalisationStats, VariableLayout
from stmodel.data.readers import describe_source, source_files
from stmodel.errors import DataError

STATS_FILE = "stats.nc"
CLIMATOLOGY_FILE = "climatology.nc"
FINGERPRINT_ATTR = "stmodel_fingerprint"


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
    kind, keys, key_coords = _climatology_keys(times)
    n_chunks = -(-len(times) // request.time_chunk)
    bar = tqdm(
        total=n_chunks * len(variables), desc="statistics", unit="chunk", disable=not progress
    )
    stats_vars, clim_vars = {}, {}
    for name in variables:
        var = period[name]
        reduce_axes = tuple(i for i, d in enumerate(var.dims) if d in ("time", "lat", "lon"))
        moments = _Moments()
        diff_moments = _Moments()
        n_groups = int(np.prod([len(c) for c in key_coords]))  # 1 for a time mean
        clim_sum = np.zeros((n_groups,) + var.shape[1:], np.float64)
        clim_count = np.zeros(clim_sum.shape[0], np.int64)
        for start in range(0, len(times), request.time_chunk):
            stop = min(start + request.time_chunk, len(times))
            block = _load(var, start, min(stop + lag, len(times)), name, ds)  # [time, ...]
            current = block[: stop - start]
            moments.add(current, reduce_axes)
            paired = np.nonzero(_lagged_pairs(times, start, stop, lag, request.dt_hours))[0]
            if paired.size:
                diff_moments.add(block[paired + lag] - block[paired], reduce_axes)
            np.add.at(clim_sum, keys[start:stop], current.astype(np.float64))
            np.add.at(clim_count, keys[start:stop], 1)
            bar.update()
        level_dims = tuple(d for d in var.dims if d == "level")
        stats_vars[name] = (
            ("statistic",) + level_dims,
            np.stack([moments.mean(), moments.std(), diff_moments.std()]).astype(np.float32),
            {"units": var.attrs.get("units", "")},
        )
        clim = _finish_climatology(clim_sum, clim_count, kind, request.smoothing_days)
        clim_dims = {"dayofyear_hour": ("dayofyear", "hour"), "hour": ("hour",), "time_mean": ()}[
            kind
        ]
        clim_vars[name] = (clim_dims + var.dims[1:], clim.astype(np.float32), var.attrs)
    bar.close()
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
    clim_coords.update(
        dict(
            zip(
                {"dayofyear_hour": ("dayofyear", "hour"), "hour": ("hour",), "time_mean": ()}[kind],
                key_coords,
            )
        )
    )
    climatology = xr.Dataset(clim_vars, coords=clim_coords, attrs=attrs)
    return stats, climatology


class _Moments:
    """Running mean / variance per non-reduced axis (Chan et al. combination)."""

    def __init__(self):
        self.count = 0
        self.mean_ = None
        self.m2 = None

    def add(self, block: np.ndarray, axes: tuple[int, ...]) -> None:
        if block.size == 0:
            return
        block = block.astype(np.float64)
        n = block.size // int(np.prod([block.shape[a] for a in range(block.ndim) if a not in axes]))
        mean = block.mean(axis=axes)
        m2 = ((block - np.expand_dims(mean, axes)) ** 2).sum(axis=axes)
        if self.mean_ is None:
            self.count, self.mean_, self.m2 = n, mean, m2
            return
        total = self.count + n
        delta = mean - self.mean_
        self.mean_ = self.mean_ + delta * n / total
        self.m2 = self.m2 + m2 + delta**2 * self.count * n / total
        self.count = total

    def mean(self) -> np.ndarray:
        return self.mean_

    def std(self) -> np.ndarray:
        if self.mean_ is None:
            raise DataError("no pairs of times dt apart inside the training period")
        return np.sqrt(self.m2 / self.count)


def _lag_steps(times: np.ndarray, dt_hours: int, ds: xr.Dataset) -> int:
    step = np.median(np.diff(times)) / np.timedelta64(1, "h")
    lag = dt_hours / step
    if step <= 0 or abs(lag - round(lag)) > 1e-6 or round(lag) < 1:
        raise DataError(
            f"{describe_source(ds)}: time step of the data is {step:g} h, which does not "
            f"divide the model time step of {dt_hours} h"
        )
    return int(round(lag))


def _lagged_pairs(times, start, stop, lag, dt_hours) -> np.ndarray:
    """[stop - start] bool: time t has its partner t + dt at index + lag, dt apart."""
    idx = np.arange(start, stop)
    ok = idx + lag < len(times)
    partner = np.where(ok, idx + lag, idx)
    return ok & ((times[partner] - times[idx]) == np.timedelta64(dt_hours, "h"))


def _climatology_keys(times: np.ndarray):
    """Group index of each time, and the coordinate values of the groups."""
    index = xr.DataArray(times, dims="time").dt
    hours = index.hour.values
    days = index.dayofyear.values
    span_days = (times[-1] - times[0]) / np.timedelta64(1, "D")
    if span_days >= 728:  # two years of data, give or take the last day
        unique_hours = np.unique(hours)
        keys = (days - 1) * len(unique_hours) + np.searchsorted(unique_hours, hours)
        return "dayofyear_hour", keys, (np.arange(1, 367), unique_hours)
    if len(np.unique(hours)) > 1:
        unique_hours = np.unique(hours)
        return "hour", np.searchsorted(unique_hours, hours), (unique_hours,)
    return "time_mean", np.zeros(len(times), np.int64), ()


def _finish_climatology(total, count, kind, smoothing_days):
    if kind != "dayofyear_hour":
        return (
            total / count.reshape((-1,) + (1,) * (total.ndim - 1)).clip(min=1)
            if kind == "hour"
            else (total / count[0])[0]
        )
    n_hours = total.shape[0] // 366
    total = total.reshape((366, n_hours) + total.shape[1:])  # [dayofyear, hour, ...]
    count = count.reshape(366, n_hours).astype(np.float64)
    # Circular smoothing over day of year; dividing smoothed sums by smoothed counts
    # fills days absent from the data (day 366 in non-leap years).
    half = smoothing_days // 2
    kernel_total = sum(np.roll(total, s, axis=0) for s in range(-half, half + 1))
    kernel_count = sum(np.roll(count, s, axis=0) for s in range(-half, half + 1))
    return kernel_total / kernel_count.reshape(kernel_count.shape + (1,) * (total.ndim - 2))


def _load(var: xr.DataArray, start: int, stop: int, name: str, ds: xr.Dataset) -> np.ndarray:
    try:
        return np.asarray(var.isel(time=slice(start, stop)).values)
    except (OSError, RuntimeError, ValueError) as error:
        raise DataError(
            f"{describe_source(ds)}: reading variable {name} failed ({error}); "
            "the file may be truncated or corrupt"
        ) from error


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
