"""What a metric is: a per-init part that reduces over space only, and an aggregate.

As in WeatherBench 2's ``metrics.py``, a metric is a small object. Evaluation
runs block by block over (init times x leads) (see
:func:`stmodel.evaluation.scoring.plan_blocks`), so a metric first reduces
each block over the grid only (:meth:`Metric.per_init`, values per init time,
lead [and level]), and only once every block is done combines the init times
(:meth:`Metric.aggregate`). The per-init values are named ``parts``; two
metrics that need the same part (spread and the spread-skill ratio both need
the member variance) declare the same name and it is computed once.
"""

from __future__ import annotations

import abc
from typing import ClassVar

import xarray as xr

# WeatherBench 2's name for the ensemble-member dimension.
REALIZATION_DIM = "realization"


class Metric(abc.ABC):
    """One score. Subclasses set the class attributes and implement both parts.

    ``forecast`` passed to :meth:`per_init` is one block (time, prediction_timedelta,
    [realization,] [level,] latitude, longitude) in float64; the ensemble mean
    (realization averaged out) unless ``on_members``, then the members themselves
    (a deterministic forecast arrives without the realization dim: a one-member
    ensemble). ``truth`` and ``climatology`` are on the same block, without members.
    """

    name: ClassVar[str]  # the scorecard's ``metric`` column
    title: ClassVar[str]  # for tables and plot titles
    parts: ClassVar[tuple[str, ...]]  # names of the per-init values per_init returns
    on_members: ClassVar[bool] = False  # per_init sees the members, not their mean
    needs_climatology: ClassVar[bool] = False
    higher_is_better: ClassVar[bool] = False
    signed: ClassVar[bool] = False  # best at 0, compare magnitudes (a bias)
    dimensionless: ClassVar[bool] = False  # else in the variable's units
    scalar: ClassVar[bool] = True  # one value per (forecast, lead, level): a scorecard row
    for_baselines: ClassVar[bool] = True  # also scored for the baselines (scoring.BASELINES)

    @abc.abstractmethod
    def per_init(
        self,
        forecast: xr.DataArray,
        truth: xr.DataArray,
        climatology: xr.DataArray,
        weights: xr.DataArray,
    ) -> dict[str, xr.DataArray]:
        """The parts, each reduced over latitude and longitude only."""

    @abc.abstractmethod
    def aggregate(self, per_init: xr.Dataset) -> xr.DataArray:
        """The score from the parts, combined over the init dim ``time``."""
