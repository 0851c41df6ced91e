"""Training examples from a canonical dataset: deterministic, resumable, sharded.

A sample is the state at t (input) and at t + dt, ..., t + n dt (targets).
The batch at global step s depends only on (seed, s): an epoch's order is a
permutation drawn from (seed, epoch), so a restarted run resumes exactly by
asking for step s again. In a multi-process run every process reads only its
contiguous share of each global batch.
"""

from __future__ import annotations

import collections
import dataclasses
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np
import xarray as xr
from tqdm.auto import tqdm

from stmodel.data import canonical, symmetries
from stmodel.data.layout import Batch, VariableLayout
from stmodel.data.readers import describe_source
from stmodel.data.validation import require_variables
from stmodel.errors import DataError

# Pangu-Weather's channel order for upper-air fields, then anything else.
UPPER_AIR_ORDER = (
    "geopotential",
    "specific_humidity",
    "temperature",
    "u_component_of_wind",
    "v_component_of_wind",
)
# Computed constant fields: position encodings.
ENCODINGS = ("sin_lat", "cos_lat", "sin_lon", "cos_lon")

DEFAULT_IN_MEMORY_BYTES = 4 * 2**30
T = TypeVar("T")


def read_ahead(batch: Callable[[int], T], start: int, end: int, depth: int) -> Iterator[T]:
    """batch(start), ..., batch(end - 1), in that order, with up to `depth` of the next ones
    being read meanwhile, each by its own thread (0: each read when asked for).

    The training loop's reader. Results come in step order whatever thread read them, so
    when batch(step) depends only on the step the batches are the same for any depth.
    Closing the iterator early cancels the reads not yet started and waits for the others.
    """
    if depth <= 0:
        for step in range(start, end):
            yield batch(step)
        return
    with ThreadPoolExecutor(depth, thread_name_prefix="read-ahead") as reader:
        pending = collections.deque(
            reader.submit(batch, step) for step in range(start, min(start + depth, end))
        )
        try:
            for step in range(start, end):
                result = pending.popleft().result()
                if step + depth < end:
                    pending.append(reader.submit(batch, step + depth))
                yield result
        finally:
            for future in pending:
                future.cancel()


def default_layout(ds: xr.Dataset, levels: Sequence[int] | None = None) -> VariableLayout:
    """Every time-varying variable of the dataset, the known ones in Pangu's order."""
    upper = [v for v in ds.data_vars if "level" in ds[v].dims and "time" in ds[v].dims]
    upper.sort(key=lambda v: (UPPER_AIR_ORDER.index(v) if v in UPPER_AIR_ORDER else 99, v))
    surface = sorted(v for v in ds.data_vars if "level" not in ds[v].dims and "time" in ds[v].dims)
    constants = [v for v in canonical.CONSTANT_VARIABLES if v in ds.data_vars]
    return VariableLayout(
        upper_air=tuple(upper),
        levels=tuple(int(x) for x in (levels if levels is not None else ds["level"].values)),
        surface=tuple(surface),
        constants=tuple(constants) + ENCODINGS,
    )


def constant_fields(ds: xr.Dataset, layout: VariableLayout) -> np.ndarray:
    """[lat, lon, constant]: standardised static fields and position encodings."""
    lat = np.deg2rad(ds["lat"].values)
    lon = np.deg2rad(ds["lon"].values)
    lat2d, lon2d = np.meshgrid(lat, lon, indexing="ij")  # [lat, lon]
    computed = {
        "sin_lat": np.sin(lat2d),
        "cos_lat": np.cos(lat2d),
        "sin_lon": np.sin(lon2d),
        "cos_lon": np.cos(lon2d),
    }
    fields = []
    for name in layout.constants:
        if name in computed:
            fields.append(computed[name])
            continue
        if name not in ds.data_vars:
            raise DataError(f"{describe_source(ds)}: constant field {name} is not in the data")
        field = np.asarray(ds[name].values, np.float64)
        if field.ndim == 3:  # some files give constants a time axis of 1
            field = field[0]
        std = field.std()
        fields.append((field - field.mean()) / (std if std > 0 else 1.0))
    return np.stack(fields, axis=-1).astype(np.float32)  # [lat, lon, constant]


@dataclasses.dataclass(frozen=True)
class SplitPeriod:
    start: str  # ISO, inclusive
    end: str  # ISO, inclusive

    @classmethod
    def parse(cls, text: str) -> SplitPeriod:
        try:
            start, end = text.split("/")
            np.datetime64(start), np.datetime64(end)
        except ValueError as error:
            raise DataError(f"period {text!r} is not of the form YYYY-MM-DD/YYYY-MM-DD") from error
        return cls(start, end)


def split_periods(ds: xr.Dataset) -> dict[str, SplitPeriod]:
    """The train / validation / test periods a dataset's attributes recommend."""
    periods = {}
    for split in ("train", "validation", "test"):
        text = ds.attrs.get(f"{split}_period")
        if text:
            periods[split] = SplitPeriod.parse(text)
    return periods


class SampleSource:
    """Random access to samples of one period of a canonical dataset."""

    def __init__(
        self,
        ds: xr.Dataset,
        layout: VariableLayout,
        period: SplitPeriod,
        *,
        dt_hours: int = 6,
        n_target_steps: int = 1,
        in_memory_bytes: int = DEFAULT_IN_MEMORY_BYTES,
        progress: bool = False,
    ):
        require_variables(ds, layout.upper_air, layout.levels)
        require_variables(ds, layout.surface)
        self.layout = layout
        self.dt_hours = dt_hours
        self.n_target_steps = n_target_steps
        self._where = describe_source(ds)
        ds = ds.sel(time=slice(period.start, period.end))
        times = ds["time"].values
        self.times = times
        self.start_indices = _valid_starts(times, dt_hours, n_target_steps)
        if self.start_indices.size == 0:
            raise DataError(
                f"{self._where}: no samples in {period.start}/{period.end}: need times "
                f"{n_target_steps} x {dt_hours} h apart inside the period"
            )
        self._lag = _lag(times, dt_hours)
        self.constants = constant_fields(ds, layout)
        self._ds = ds[list(layout.upper_air) + list(layout.surface)]
        if layout.upper_air:
            self._ds = self._ds.sel(level=list(layout.levels))
        n_values = (
            len(times)
            * (len(layout.upper_air) * len(layout.levels) + len(layout.surface))
            * ds.sizes["lat"]
            * ds.sizes["lon"]
        )
        self._upper = self._surface = None
        if n_values * 4 <= in_memory_bytes:
            self._upper, self._surface = self._read_times(np.arange(len(times)), progress)

    def __len__(self) -> int:
        return int(self.start_indices.size)

    @property
    def sample_times(self) -> np.ndarray:
        return self.times[self.start_indices]

    def read(self, sample_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """upper [n, 1 + steps, level, lat, lon, var], surface [n, 1 + steps, lat, lon, var],
        time."""
        time_ids = (
            self.start_indices[sample_ids][:, None]
            + self._lag * np.arange(self.n_target_steps + 1)[None, :]
        )  # [n, 1 + steps]
        if self._upper is not None:
            return self._upper[time_ids], self._surface[time_ids], self.times[time_ids[:, 0]]
        # Lazily: read each time step needed once, all variables in one dask compute.
        needed, where = np.unique(time_ids, return_inverse=True)
        upper, surface = self._read_times(needed)
        where = where.reshape(time_ids.shape)
        return upper[where], surface[where], self.times[time_ids[:, 0]]

    def _read_times(self, time_ids: np.ndarray, progress: bool = False):
        """upper [time, level, lat, lon, var], surface [time, lat, lon, var] as float32."""
        names = list(self.layout.upper_air) + list(self.layout.surface)
        try:
            if progress:
                arrays = {
                    name: np.asarray(self._ds[name].isel(time=time_ids).values, np.float32)
                    for name in tqdm(names, desc="loading", leave=False)
                }
            else:
                loaded = self._ds.isel(time=time_ids).load()
                arrays = {name: np.asarray(loaded[name].values, np.float32) for name in names}
        except (OSError, RuntimeError, ValueError) as error:
            raise DataError(
                f"{self._where}: reading the data failed ({error}); the file may "
                "be truncated or corrupt"
            ) from error
        for name, values in arrays.items():
            finite = np.isfinite(values).reshape(len(time_ids), -1).all(axis=1)
            if not finite.all():
                when = np.datetime_as_string(self.times[time_ids[np.argmin(finite)]], "m")
                raise DataError(
                    f"{self._where}: variable {name} has NaN or Inf values first at "
                    f"{when}; expected finite values everywhere"
                )
        n_levels, n_lat, n_lon = (
            len(self.layout.levels),
            self._ds.sizes["lat"],
            self._ds.sizes["lon"],
        )
        upper = (
            np.stack([arrays[v] for v in self.layout.upper_air], axis=-1)
            if self.layout.upper_air
            else np.zeros((len(time_ids), n_levels, n_lat, n_lon, 0), np.float32)
        )
        surface = (
            np.stack([arrays[v] for v in self.layout.surface], axis=-1)
            if self.layout.surface
            else np.zeros((len(time_ids), n_lat, n_lon, 0), np.float32)
        )
        return upper, surface  # [time, level, lat, lon, var], [time, lat, lon, var]


@dataclasses.dataclass(frozen=True)
class Augmentation:
    """Symmetry transforms for training batches (see stmodel.data.symmetries)."""

    symmetries: tuple[str, ...]
    sign_flip: tuple[str, ...]  # variables negated by the north-south mirror

    @classmethod
    def for_source(
        cls, requested: Sequence[str], source: SampleSource, ds: xr.Dataset
    ) -> Augmentation | None:
        """None when nothing is requested; DataError when the data do not declare it."""
        if not requested:
            return None
        flip = symmetries.check_augmentation(
            requested, ds.attrs, source.layout, ds["lat"].values, describe_source(ds)
        )
        return cls(tuple(requested), flip)


class BatchStream:
    """Batches for global steps start_step, start_step + 1, ... (this process's share)."""

    def __init__(
        self,
        source: SampleSource,
        batch_size: int,
        *,
        seed: int = 0,
        start_step: int = 0,
        shuffle: bool = True,
        process_index: int = 0,
        process_count: int = 1,
        prefetch: int = 2,
        augmentation: Augmentation | None = None,
    ):
        if batch_size % process_count:
            raise DataError(
                f"global batch size {batch_size} must be a multiple of the number "
                f"of processes ({process_count})"
            )
        if batch_size > len(source):
            raise DataError(f"batch size {batch_size} exceeds the {len(source)} samples available")
        self.source = source
        self.batch_size = batch_size
        self.seed = seed
        self.step = start_step
        self.shuffle = shuffle
        self.process_index = process_index
        self.process_count = process_count
        self.prefetch = prefetch
        self.augmentation = augmentation
        self.steps_per_epoch = len(source) // batch_size

    def global_sample_ids(self, step: int) -> np.ndarray:
        """[batch_size] sample ids of global step `step`, the same on every process."""
        epoch, position = divmod(step, self.steps_per_epoch)
        order = (
            np.random.default_rng([self.seed, epoch]).permutation(len(self.source))
            if self.shuffle
            else np.arange(len(self.source))
        )
        return order[position * self.batch_size : (position + 1) * self.batch_size]

    def local_sample_ids(self, step: int) -> np.ndarray:
        share = self.batch_size // self.process_count
        return self.global_sample_ids(step)[
            self.process_index * share : (self.process_index + 1) * share
        ]

    def batch(self, step: int) -> Batch:
        upper, surface, times = self.source.read(self.local_sample_ids(step))
        batch = Batch(
            inputs_upper=upper[:, 0],
            inputs_surface=surface[:, 0],
            targets_upper=upper[:, 1:],
            targets_surface=surface[:, 1:],
            constants=self.source.constants,
            input_time=times.astype("datetime64[s]").astype(np.int64),
        )
        if self.augmentation is None:
            return batch
        # Each sample's transform depends on (seed, step, its place in the global batch) only,
        # so resumed and multi-process runs draw the same ones.
        share = self.batch_size // self.process_count
        first = self.process_index * share
        rngs = [np.random.default_rng([self.seed, step, first + i, 1]) for i in range(share)]
        return symmetries.augment(
            batch,
            self.source.layout,
            self.augmentation.symmetries,
            self.augmentation.sign_flip,
            rngs,
        )

    def __iter__(self) -> Iterator[Batch]:
        """Endless batches from self.step on, `prefetch` of them read ahead (read_ahead)."""
        for batch in read_ahead(self.batch, self.step, sys.maxsize, self.prefetch):
            self.step += 1
            yield batch


def _lag(times: np.ndarray, dt_hours: int) -> int:
    step_hours = np.median(np.diff(times)) / np.timedelta64(1, "h")
    lag = dt_hours / step_hours
    if abs(lag - round(lag)) > 1e-6 or round(lag) < 1:
        raise DataError(
            f"the data's time step ({step_hours:g} h) does not divide the model time "
            f"step ({dt_hours} h)"
        )
    return int(round(lag))


def _valid_starts(times: np.ndarray, dt_hours: int, n_steps: int) -> np.ndarray:
    """Indices t whose t + k dt (k = 1..n_steps) exist exactly in `times`."""
    if len(times) < 2:
        return np.zeros(0, np.int64)
    lag = _lag(times, dt_hours)
    starts = np.arange(len(times) - lag * n_steps)
    ok = np.ones(starts.size, bool)
    for k in range(1, n_steps + 1):
        ok &= (times[starts + k * lag] - times[starts]) == np.timedelta64(k * dt_hours, "h")
    return starts[ok]
