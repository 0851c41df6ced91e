"""Pairs of coarse and fine fields over a region, read through the sample pipeline.

The fine data are cut to the region; the coarse data to the region widened by a
few coarse cells, so interpolation near the region's edges uses real values
where the coarse data have them. Both are read by
:class:`~stmodel.data.pipeline.SampleSource` (samples of one time, no targets),
at the times the two share.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from stmodel.data import canonical
from stmodel.data.layout import VariableLayout
from stmodel.data.pipeline import ENCODINGS, UPPER_AIR_ORDER, SampleSource, SplitPeriod
from stmodel.data.readers import describe_source, open_canonical
from stmodel.data.validation import check_grid, check_times, check_units
from stmodel.downscaling.baselines import GridInterpolator
from stmodel.downscaling.inputs import static_fields, static_names, time_channels
from stmodel.downscaling.network import crop_halo
from stmodel.downscaling.region import RegionBox, select_region
from stmodel.errors import DataError

# Coarse cells beyond each edge of the region that interpolation may use.
MARGIN_CELLS = 3


def grid_spacing(values: np.ndarray) -> float:
    values = np.asarray(values, np.float64)
    return float(np.median(np.abs(np.diff(values)))) if values.size > 1 else 0.0


def extended_axis(values: np.ndarray, cells: int) -> np.ndarray:
    """A regular axis continued by `cells` points at each end."""
    values = np.asarray(values, np.float64)
    step = float(np.mean(np.diff(values))) if values.size > 1 else 1.0
    return np.concatenate(
        [
            values[0] - step * np.arange(cells, 0, -1),
            values,
            values[-1] + step * np.arange(1, cells + 1),
        ]
    )


def downscaling_layout(
    fine: xr.Dataset, coarse: xr.Dataset, fine_static: xr.Dataset
) -> VariableLayout:
    """The time-varying variables both datasets hold (levels both have), and the fine statics."""

    def upper_of(ds):
        return {v for v in ds.data_vars if "level" in ds[v].dims and "time" in ds[v].dims}

    def surface_of(ds):
        return {
            v
            for v in ds.data_vars
            if "level" not in ds[v].dims
            and "time" in ds[v].dims
            and v not in canonical.CONSTANT_VARIABLES
        }

    upper = sorted(
        upper_of(fine) & upper_of(coarse),
        key=lambda v: (UPPER_AIR_ORDER.index(v) if v in UPPER_AIR_ORDER else 99, v),
    )
    surface = sorted(surface_of(fine) & surface_of(coarse))
    if not upper and not surface:
        raise DataError(
            f"{describe_source(fine)} and {describe_source(coarse)}: no time-varying variable is "
            f"in both (fine: {sorted(upper_of(fine) | surface_of(fine))}; coarse: "
            f"{sorted(upper_of(coarse) | surface_of(coarse))})"
        )
    levels: tuple[int, ...] = ()
    if upper:
        levels = tuple(
            sorted(
                {int(x) for x in fine["level"].values} & {int(x) for x in coarse["level"].values}
            )
        )
        if not levels:
            raise DataError(
                f"{describe_source(fine)} and {describe_source(coarse)}: no pressure level is "
                "in both"
            )
    return VariableLayout(
        upper_air=tuple(upper),
        levels=levels,
        surface=tuple(surface),
        constants=static_names(fine_static),
    )


@dataclasses.dataclass
class RegionalPair:
    """Fine data over the region and coarse data over the region plus a margin.

    The network works on the region's fine grid widened by `halo` (lat, lon) cells on
    each side, where the interpolated coarse fields and static fields are known but
    there is no fine truth to fit.
    """

    fine: xr.Dataset
    coarse: xr.Dataset
    fine_static: xr.Dataset
    box: RegionBox
    layout: VariableLayout
    halo: tuple[int, int] = (0, 0)

    @property
    def fine_lat(self) -> np.ndarray:
        return self.fine["lat"].values

    @property
    def fine_lon(self) -> np.ndarray:
        return self.fine["lon"].values

    @property
    def network_lat(self) -> np.ndarray:
        return extended_axis(self.fine_lat, self.halo[0])

    @property
    def network_lon(self) -> np.ndarray:
        return extended_axis(self.fine_lon, self.halo[1])

    def interpolator(self, method: str) -> GridInterpolator:
        """To the region's fine grid (the baselines)."""
        return GridInterpolator.between(
            self.coarse["lat"].values,
            self.coarse["lon"].values,
            self.fine_lat,
            self.fine_lon,
            method,
            where=describe_source(self.coarse),
        )

    def network_interpolator(self, method: str) -> GridInterpolator:
        """To the network's grid (region plus halo)."""
        return GridInterpolator.between(
            self.coarse["lat"].values,
            self.coarse["lon"].values,
            self.network_lat,
            self.network_lon,
            method,
            where=describe_source(self.coarse),
        )

    def static(self) -> np.ndarray:
        """[lat, lon, static] on the network's grid: position encodings computed there, data
        fields (orography, land-sea mask) continued from the region's edge into the halo."""
        lat_halo, lon_halo = self.halo
        padded = {}
        for name in self.layout.constants:
            if name in self.fine_static.data_vars:
                values = np.asarray(self.fine_static[name].values, np.float64)
                values = values[0] if values.ndim == 3 else values
                widths = ((lat_halo, lat_halo), (lon_halo, lon_halo))
                padded[name] = (("lat", "lon"), np.pad(values, widths, mode="edge"))
        grid = xr.Dataset(padded, coords={"lat": self.network_lat, "lon": self.network_lon})
        return static_fields(grid, self.layout)

    def sources(self, period: SplitPeriod) -> tuple[SampleSource, SampleSource]:
        """(fine, coarse) sources of the same samples: times both datasets have in the period."""
        fine = self.fine.sel(time=slice(period.start, period.end))
        coarse = self.coarse.sel(time=slice(period.start, period.end))
        common = np.intersect1d(fine["time"].values, coarse["time"].values)
        if common.size < 2:
            raise DataError(
                f"{describe_source(self.fine)} and {describe_source(self.coarse)}: {common.size} "
                f"common time(s) in {period.start}/{period.end}; need at least 2"
            )
        step_hours = float(np.median(np.diff(common)) / np.timedelta64(1, "h"))
        if abs(step_hours - round(step_hours)) > 1e-6 or round(step_hours) < 1:
            raise DataError(
                f"{describe_source(self.fine)}: time step {step_hours:g} h is not a whole "
                "number of hours"
            )
        fine = fine.sel(time=common)
        coarse = coarse.sel(time=common)
        # Samples of a single time: no targets, every time its own sample.
        options = dict(dt_hours=int(round(step_hours)), n_target_steps=0)
        whole = SplitPeriod(str(common[0]), str(common[-1]))
        fine_source = SampleSource(fine, self.layout, whole, **options)
        coarse_layout = dataclasses.replace(self.layout, constants=ENCODINGS)
        coarse_source = SampleSource(coarse, coarse_layout, whole, **options)
        return fine_source, coarse_source


def open_pair(
    coarse_paths: Sequence[str | Path],
    fine_paths: Sequence[str | Path],
    box: RegionBox,
    static_paths: Sequence[str | Path] = (),
    layout: VariableLayout | None = None,
    halo: tuple[int, int] = (0, 0),
) -> RegionalPair:
    """Open, check and cut both datasets; `layout` (from a checkpoint) fixes the variables."""
    coarse = open_canonical(coarse_paths)
    fine = open_canonical(fine_paths)
    for ds in (coarse, fine):
        check_grid(ds)
        check_times(ds)
        check_units(ds)
    fine = select_region(fine, box)
    fine_static = fine
    if static_paths:
        fine_static = select_region(open_canonical(static_paths), box)
        _require_same_grid(fine_static, fine)
    coarse_spacing = max(grid_spacing(coarse["lat"].values), grid_spacing(coarse["lon"].values))
    coarse = select_region(coarse, box, margin=MARGIN_CELLS * coarse_spacing)
    fine_spacing = max(grid_spacing(fine["lat"].values), grid_spacing(fine["lon"].values))
    if coarse_spacing <= fine_spacing * (1 + 1e-6):
        raise DataError(
            f"{describe_source(coarse)}: its grid spacing ({coarse_spacing:g} deg) is not "
            f"coarser than that of {describe_source(fine)} ({fine_spacing:g} deg); were "
            "--coarse and --fine swapped?"
        )
    if layout is None:
        layout = downscaling_layout(fine, coarse, fine_static)
    return RegionalPair(fine, coarse, fine_static, box, layout, tuple(halo))


def _require_same_grid(static: xr.Dataset, fine: xr.Dataset) -> None:
    for dim in ("lat", "lon"):
        a, b = static[dim].values, fine[dim].values
        if a.shape != b.shape or not np.allclose(a, b, atol=1e-6):
            raise DataError(
                f"{describe_source(static)}: its {dim} grid over the region differs from "
                f"that of the fine data {describe_source(fine)}; static fields must be on "
                "the fine grid"
            )


@dataclasses.dataclass(frozen=True)
class PairBatch:
    """One batch, numpy, physical units: inputs on the network's grid (region plus halo),
    truth on the region."""

    interpolated_upper: np.ndarray  # [batch, level, lat, lon, var] (network's grid)
    interpolated_surface: np.ndarray  # [batch, lat, lon, var] (network's grid)
    time: np.ndarray  # [batch, lat, lon, 4] (network's grid)
    coarse_upper: np.ndarray  # [batch, level, coarse lat, coarse lon, var]
    coarse_surface: np.ndarray  # [batch, coarse lat, coarse lon, var]
    fine_upper: np.ndarray  # [batch, level, lat, lon, var]
    fine_surface: np.ndarray  # [batch, lat, lon, var]
    times: np.ndarray  # [batch] datetime64


class PairReader:
    """Batches of (interpolated coarse, time channels, fine truth) by sample id."""

    def __init__(self, pair: RegionalPair, period: SplitPeriod, interpolation: str):
        self.pair = pair
        self.fine_source, self.coarse_source = pair.sources(period)
        self.interpolate = pair.network_interpolator(interpolation)
        self.network_lon = pair.network_lon
        self.n_lat = len(pair.network_lat)

    def __len__(self) -> int:
        return len(self.fine_source)

    @property
    def times(self) -> np.ndarray:
        return self.fine_source.sample_times

    def region(self, x: np.ndarray) -> np.ndarray:
        """A network-grid field [..., lat, lon, channel] cropped to the region."""
        return crop_halo(x, self.pair.halo)

    def read(self, sample_ids: np.ndarray) -> PairBatch:
        fine_upper, fine_surface, times = self.fine_source.read(sample_ids)
        coarse_upper, coarse_surface, _ = self.coarse_source.read(sample_ids)
        return PairBatch(
            interpolated_upper=self.interpolate.channels_last(coarse_upper[:, 0]),
            interpolated_surface=self.interpolate.channels_last(coarse_surface[:, 0]),
            time=time_channels(times, self.network_lon, self.n_lat),
            coarse_upper=coarse_upper[:, 0],
            coarse_surface=coarse_surface[:, 0],
            fine_upper=fine_upper[:, 0],
            fine_surface=fine_surface[:, 0],
            times=times,
        )
