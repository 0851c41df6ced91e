"""Checks on canonical datasets, each failing with a message that names the file,
the variable and what was expected."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import xarray as xr

from stmodel.data import canonical
from stmodel.data.readers import describe_source, source_files
from stmodel.errors import DataError


def require_variables(ds: xr.Dataset, variables: Iterable[str], levels: Sequence[int] = ()) -> None:
    """Every variable must be present; upper-air variables on every level asked for."""
    missing = [name for name in variables if name not in ds.data_vars]
    if missing:
        raise DataError(
            f"{describe_source(ds)}: missing variable(s) {', '.join(missing)}; "
            f"found {', '.join(sorted(ds.data_vars)) or 'none'}"
        )
    if levels:
        have = set(ds["level"].values.tolist()) if "level" in ds.dims else set()
        lacking = [lev for lev in levels if lev not in have]
        if lacking:
            raise DataError(
                f"{describe_source(ds)}: missing pressure level(s) {lacking} hPa; "
                f"found {sorted(have)}"
            )


def check_grid(ds: xr.Dataset) -> None:
    """Latitude and longitude must be regularly spaced (an equiangular grid)."""
    for dim in ("lat", "lon"):
        values = ds[dim].values
        if values.size < 2:
            continue
        steps = np.diff(values)
        if not np.allclose(steps, steps[0], rtol=1e-3, atol=1e-5):
            worst = int(np.argmax(np.abs(steps - steps[0])))
            raise DataError(
                f"{describe_source(ds)}: {dim} is not regularly spaced (step {steps[0]:g} deg, but "
                f"{values[worst]:g} -> {values[worst + 1]:g}); expected an equiangular grid, "
                "regrid first (e.g. with xarray-regrid or CDO)"
            )


def check_times(ds: xr.Dataset) -> None:
    """Times must be strictly increasing (no duplicates, sorted)."""
    if "time" not in ds.dims:
        return
    times = ds["time"].values
    if not np.issubdtype(times.dtype, np.datetime64):
        raise DataError(
            f"{describe_source(ds)}: time coordinate has dtype {times.dtype}; expected dates"
        )
    steps = np.diff(times)
    if np.any(steps == np.timedelta64(0)):
        dup = times[1:][steps == np.timedelta64(0)][0]
        raise DataError(
            f"{describe_source(ds)}: duplicated time {_fmt(dup)}; each time must occur once "
            "(overlapping input files?)"
        )
    if np.any(steps < np.timedelta64(0)):
        bad = int(np.argmax(steps < np.timedelta64(0)))
        raise DataError(
            f"{describe_source(ds)}: times are not sorted ({_fmt(times[bad])} is followed by "
            f"{_fmt(times[bad + 1])}); expected increasing times"
        )


def check_units(ds: xr.Dataset) -> None:
    """Catch the two commonest unit mistakes by magnitude: Z as height, T in °C.

    Reads one time step only.
    """
    sample = ds.isel(time=0) if "time" in ds.dims else ds
    for name in canonical.TEMPERATURE_VARIABLES:
        if name in sample.data_vars:
            median = _median_of_finite(sample[name].values)
            if median < canonical.MIN_PLAUSIBLE_KELVIN:
                raise DataError(
                    f"{describe_source(ds)}: variable {name} has median {median:.1f}, which "
                    "looks like degrees Celsius; expected kelvin (add 273.15)"
                )
    if "geopotential" in sample.data_vars and "level" in sample["geopotential"].dims:
        upper = sample["geopotential"].sel(level=sample["level"] <= 500)
        if upper.sizes["level"]:
            median = _median_of_finite(upper.values)
            if median < canonical.MIN_PLAUSIBLE_GEOPOTENTIAL_500HPA:
                raise DataError(
                    f"{describe_source(ds)}: variable geopotential has median {median:.0f} at "
                    "levels <= 500 hPa, which looks like geopotential height in metres; expected "
                    f"geopotential in m2/s2 (multiply height by g = {canonical.GRAVITY})"
                )


def _median_of_finite(values: np.ndarray) -> float:
    """The median of the finite values; NaN (no verdict) where there are none."""
    finite = values[np.isfinite(values)]
    return float(np.median(finite)) if finite.size else float("nan")


def find_non_finite(
    ds: xr.Dataset, variables: Iterable[str] | None = None, time_chunk: int = 64
) -> tuple[str, str | None] | None:
    """Return (variable, first bad time) of the first NaN/Inf, or None. Reads in chunks."""
    for name in variables or list(ds.data_vars):
        variable = ds[name]
        if "time" not in variable.dims:
            if not np.all(np.isfinite(variable.values)):
                return name, None
            continue
        for start in range(0, variable.sizes["time"], time_chunk):
            block = variable.isel(time=slice(start, start + time_chunk)).values
            finite = np.isfinite(block).reshape(block.shape[0], -1).all(axis=1)
            if not finite.all():
                return name, _fmt(variable["time"].values[start + int(np.argmin(finite))])
    return None


def require_finite(ds: xr.Dataset, variables: Iterable[str] | None = None) -> None:
    bad = find_non_finite(ds, variables)
    if bad is not None:
        name, time = bad
        file = _file_holding(ds, name, time)
        at = f" first at {time}" if time else ""
        raise DataError(
            f"{file}: variable {name} has NaN or Inf values{at}; "
            "expected finite values everywhere (fill or drop those times)"
        )


def _file_holding(ds: xr.Dataset, name: str, time: str | None) -> str:
    from stmodel.data.readers import open_canonical  # error path only

    for file in source_files(ds):
        try:
            piece = open_canonical([file])
        except DataError:
            continue
        if name in piece.data_vars and (
            time is None or np.datetime64(time) in piece["time"].values
        ):
            return file
    return describe_source(ds)


def validate(ds: xr.Dataset) -> None:
    """The cheap checks (metadata and one time step); NaN scans are separate."""
    check_grid(ds)
    check_times(ds)
    check_units(ds)


def _fmt(time: np.datetime64) -> str:
    return np.datetime_as_string(time, unit="m")
