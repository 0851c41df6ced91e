"""The probabilistic climatology: past truth states as an ensemble, the baseline beside an
ensemble's probabilistic scores (WeatherBench 2's probabilistic climatology).

Definition. For each valid time V, the M members are truth states of the training period
at V's time of day and, for data with seasons, within +-W days of V's day of the year
(W = 7: WeatherBench 2's 15-day window; circular over the year end), in any of the
period's years. Data without seasons take any day of the training period at V's time of
day: those that declare the ``north_south_mirror`` symmetry (stmodel.data.symmetries), as
the built-in planet does, since the seasons of the two hemispheres are opposite and a
state's mirror image is only valid at the same date where there are none. (The planet's
``longitude_roll`` symmetry means it has no daily cycle either; the time of day is kept
anyway, which costs nothing.) Of the candidates, M are drawn without replacement (distinct
states, as an ensemble's members are) by a generator seeded with (seed, V): the same files
and seed give the same members, whatever the evaluation's blocks, and a valid time gets
the same members from every init time. M is the forecast's ensemble size by default.

The training period is the truth's ``train_period`` attribute (as `stmodel data generate`
writes it), else the truth before the first init time (as the derived deterministic
climatology, stmodel.evaluation.climatology). Candidates are not excluded near V: like
the deterministic climatology, it flatters forecasts verified inside the training period.

Reference: Rasp et al. 2024, "WeatherBench 2", JAMES 16, e2023MS004019, sec. 5
(probabilistic climatology from the ERA5 years 1990-2019), and its
``scripts/compute_probabilistic_climatological_forecasts.py``, which draws for each init
time T the times of T's hour of day and day of year +- 7 in random years and takes the
weather that followed them as the members' trajectories. Drawing per valid time instead
gives each lead the same distribution of members (V's time of day, day of year +- 7), the
only thing a per-lead score sees, and needs no truth past the training period's end.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import xarray as xr

from stmodel.data.pipeline import split_periods
from stmodel.data.symmetries import NORTH_SOUTH_MIRROR, declared_symmetries
from stmodel.errors import DataError, UserError
from stmodel.evaluation.metric_base import REALIZATION_DIM
from stmodel.evaluation.truth_alignment import select_times

DEFAULT_SEED = 0
DAY_WINDOW = 7  # +- days of the year around the valid time's (WeatherBench 2: 15 in all)
DAYS_PER_YEAR = 365.25


@dataclasses.dataclass(frozen=True)
class ProbabilisticClimatologyRequest:
    """How to draw the probabilistic climatology: ``members`` per valid time (None: the
    forecast's ensemble size, none for a deterministic forecast; 0: none), the ``seed``
    and the +- ``window_days`` around the day of the year."""

    members: int | None = None
    seed: int = DEFAULT_SEED
    window_days: int = DAY_WINDOW

    def __post_init__(self):
        if self.members is not None and (isinstance(self.members, bool) or self.members < 0):
            raise UserError(
                f"probabilistic climatology members: expected a count >= 0 (0: none), "
                f"got {self.members!r}"
            )
        if self.window_days < 0:
            raise UserError(f"window_days: expected >= 0 days, got {self.window_days}")

    def members_for(self, forecast: xr.Dataset) -> int:
        """The number of members to draw beside ``forecast`` (0: no such baseline)."""
        if self.members is not None:
            return self.members
        return int(forecast.sizes.get(REALIZATION_DIM, 0))

    def description(self) -> dict:
        """What the baseline's scores depend on besides the input files (a fingerprint)."""
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class ProbabilisticClimatology:
    """The members' source times, drawn once for every valid time of a forecast."""

    valid_times: np.ndarray  # [valid] datetime64[ns], sorted, unique
    source_times: np.ndarray  # [valid, member] datetime64[ns], truth times of the period
    description: str  # for the evaluation's notes

    @property
    def members(self) -> int:
        return self.source_times.shape[1]

    def forecast(self, truth: xr.DataArray, valid_times: xr.DataArray) -> xr.DataArray:
        """The members at ``valid_times`` (any dims), loaded in float64: dims
        valid_times.dims + (realization,) + the field's others. Each distinct source time
        is read once."""
        flat = valid_times.values.ravel()
        index = np.searchsorted(self.valid_times, flat)
        found = (index < self.valid_times.size) & (
            self.valid_times[np.minimum(index, self.valid_times.size - 1)] == flat
        )
        if not found.all():
            raise ValueError("ProbabilisticClimatology.forecast: valid times it was not drawn for")
        sources = self.source_times[index].reshape(valid_times.shape + (self.members,))
        times = xr.DataArray(
            sources,  # [*valid_times.dims, member]
            dims=(*valid_times.dims, REALIZATION_DIM),
            coords={dim: valid_times[dim].values for dim in valid_times.dims},
        )
        return select_times(truth, times).astype(np.float64)


def training_times(truth: xr.Dataset, first_init: np.datetime64) -> tuple[pd.DatetimeIndex, str]:
    """The truth's times the members come from, and where they come from in words."""
    times = pd.DatetimeIndex(truth["time"].values)
    period = split_periods(truth).get("train")
    if period is not None:
        chosen = pd.DatetimeIndex(truth["time"].sel(time=slice(period.start, period.end)).values)
        return chosen, (
            f"the training period {period.start}/{period.end} (the truth's train_period attribute)"
        )
    return times[times < pd.Timestamp(first_init)], (
        f"the truth before the first init time {pd.Timestamp(first_init)} (no train_period "
        "attribute)"
    )


def _time_of_day(times: pd.DatetimeIndex) -> np.ndarray:
    return (times - times.floor("D")).values  # timedelta64[ns]


def _day_distance(days: np.ndarray, day: int) -> np.ndarray:
    """Days between days of the year, circular over the year end, to the nearest day."""
    apart = np.abs(days - day)
    return np.rint(np.minimum(apart, DAYS_PER_YEAR - apart))


def _generator(seed: int, valid_time: np.datetime64) -> np.random.Generator:
    seconds = int(np.datetime64(valid_time, "s").astype(np.int64)) % 2**63
    return np.random.default_rng([seed, seconds])


def draw(
    truth: xr.Dataset,
    truth_source: str,
    valid_times: xr.DataArray,
    first_init: np.datetime64,
    members: int,
    request: ProbabilisticClimatologyRequest,
) -> ProbabilisticClimatology:
    """Draw ``members`` source times for every valid time (the module docstring's
    definition). DataError naming the truth and the period where it has too few states."""
    pool, where = training_times(truth, first_init)
    if pool.size == 0:
        truth_times = truth["time"].values
        covers = (
            f"{pd.Timestamp(truth_times[0])} to {pd.Timestamp(truth_times[-1])}"
            if truth_times.size
            else "no times"
        )
        raise DataError(
            f"{truth_source}: no states to draw the probabilistic climatology's members from "
            f"in {where}; the truth covers {covers}; pass truth files that cover it, or "
            "score without this baseline (--climatology-members 0, climatology_members=0)"
        )
    seasonal = NORTH_SOUTH_MIRROR not in declared_symmetries(truth.attrs)
    pool_time_of_day, pool_days = _time_of_day(pool), pool.day_of_year.values
    unique = np.unique(valid_times.values.ravel()).astype("datetime64[ns]")
    unique_index = pd.DatetimeIndex(unique)
    candidates_by_key: dict[tuple, np.ndarray] = {}
    sources = np.empty((unique.size, members), dtype="datetime64[ns]")  # [valid, member]
    for row, (valid, time_of_day, day) in enumerate(
        zip(unique, _time_of_day(unique_index), unique_index.day_of_year)
    ):
        key = (time_of_day, day if seasonal else 0)
        if key not in candidates_by_key:
            same = pool_time_of_day == time_of_day
            if seasonal:
                same &= _day_distance(pool_days, day) <= request.window_days
            candidates_by_key[key] = np.flatnonzero(same)
        candidates = candidates_by_key[key]
        if candidates.size < members:
            clock = pd.Timestamp(valid).strftime("%H:%M")
            around = (
                f" within +-{request.window_days} days of day {day} of the year" if seasonal else ""
            )
            raise DataError(
                f"{truth_source}: the probabilistic climatology needs {members} members at "
                f"valid time {pd.Timestamp(valid)}, but {where} has only {candidates.size} "
                f"state(s) at {clock}{around}; pass fewer members (--climatology-members, "
                "climatology_members=) or truth covering more of that period"
            )
        chosen = _generator(request.seed, valid).choice(candidates, size=members, replace=False)
        sources[row] = pool.values[chosen]
    kind = (
        f"the same time of day within +-{request.window_days} days of the same day of the year"
        if seasonal
        else f"the same time of day, any day (the truth declares {NORTH_SOUTH_MIRROR}: no seasons)"
    )
    description = (
        f"probabilistic climatology: {members} members per valid time, truth states at {kind}, "
        f"from {where}, {pool.size} times; seed {request.seed}"
    )
    return ProbabilisticClimatology(unique, sources, description)
