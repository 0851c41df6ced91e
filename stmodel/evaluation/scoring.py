"""Scoring one variable of a forecast and the baselines, block by block.

A 0.25 degree forecast does not fit in memory, so the scores are computed on
blocks of (init times x leads) small enough to load, as per-init values
(which do not mix init times or leads), then aggregated over init times.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import xarray as xr

from stmodel.evaluation.baselines import (
    BASELINES,
    CLIMATOLOGY,
    PERSISTENCE,
    PROBABILISTIC_CLIMATOLOGY,
    climatology_forecast,
    persistence_forecast,
)
from stmodel.evaluation.metric_base import REALIZATION_DIM, Metric
from stmodel.evaluation.metric_registry import DETERMINISTIC, REGISTRY, resolve
from stmodel.evaluation.probabilistic_climatology import ProbabilisticClimatology
from stmodel.evaluation.truth_alignment import select_times

FORECAST_DIM = "forecast"  # which forecast a score belongs to: the model or a baseline

# Bytes of one loaded float64 block of one array; about eight such arrays
# (forecast, truth, persistence, climatology, temporaries) are alive at once.
# An ensemble's block holds M fields per (init, lead) (bytes_per_field counts
# the realization dim); its largest temporaries (sorted members, |X - Y|) are
# member-sized too, about 4M + 5 fields in all, within the 8M budgeted. The
# candidates are loaded and scored one at a time, so the probabilistic
# climatology's N members (read, then gathered: 2N) and their temporaries
# replace the model's: blocks are planned for max(M, N) members.
BLOCK_BYTES = 128 * 2**20


@dataclasses.dataclass(frozen=True)
class Block:
    """A rectangle of init times x leads, as index slices."""

    init: slice
    lead: slice


def plan_blocks(
    n_init: int, n_lead: int, bytes_per_field: int, block_bytes: int = BLOCK_BYTES
) -> list[Block]:
    """Blocks covering every (init, lead) pair once, each at most ``block_bytes`` (or one field).

    Whole init-time columns are kept together where they fit, so that the
    persistence fields (truth at init time) are read as rarely as possible.
    """
    fields_per_block = max(1, block_bytes // max(1, bytes_per_field))
    if fields_per_block >= n_init:
        init_size, lead_size = n_init, max(1, min(n_lead, fields_per_block // n_init))
    else:
        init_size, lead_size = fields_per_block, 1
    return [
        Block(slice(i, min(i + init_size, n_init)), slice(j, min(j + lead_size, n_lead)))
        for i in range(0, n_init, init_size)
        for j in range(0, n_lead, lead_size)
    ]


def bytes_per_field(forecast: xr.DataArray, members: int | None = None) -> int:
    """Bytes of one (init, lead) field of ``forecast`` in float64, all members and levels;
    with ``members``, of that many members instead of the forecast's."""
    sizes = {
        dim: size
        for dim, size in forecast.sizes.items()
        if dim not in ("time", "prediction_timedelta")
    }
    if members is not None:
        sizes[REALIZATION_DIM] = members
    return 8 * math.prod(sizes.values())


def variable_blocks(
    forecast: xr.DataArray, baseline_members: int = 0, block_bytes: int = BLOCK_BYTES
) -> list[Block]:
    """The blocks :func:`score_variable` scores ``forecast`` in, beside a probabilistic
    climatology of ``baseline_members`` (0: none): planned for the larger ensemble."""
    members = max(forecast.sizes.get(REALIZATION_DIM, 1), baseline_members)
    return plan_blocks(
        forecast.sizes["time"],
        forecast.sizes["prediction_timedelta"],
        bytes_per_field(forecast, members),
        block_bytes,
    )


def _candidate_parts(
    candidate: xr.DataArray,
    truth: xr.DataArray,
    climatology: xr.DataArray,
    weights: xr.DataArray,
    chosen: Sequence[Metric],
) -> dict[str, xr.DataArray]:
    # Deterministic metrics score the ensemble mean (WeatherBench 2), computed once.
    mean = candidate
    if REALIZATION_DIM in candidate.dims:
        mean = candidate.mean(REALIZATION_DIM, skipna=False)
    parts: dict[str, xr.DataArray] = {}
    for metric in chosen:
        if all(part in parts for part in metric.parts):
            continue  # shared parts, computed by an earlier metric
        data = candidate if metric.on_members else mean
        parts.update(metric.per_init(data, truth, climatology, weights))
    return parts


def _per_init_scores(
    candidates: dict[str, Callable[[], xr.DataArray]],
    truth: xr.DataArray,
    climatology: xr.DataArray,
    weights: xr.DataArray,
    chosen: Sequence[Metric],
) -> xr.Dataset:
    # One candidate at a time, each built just before it is scored and dropped after:
    # peak memory is one candidate's block and its temporaries, not one per candidate.
    scores = {
        name: _candidate_parts(
            build(),
            truth,
            climatology,
            weights,
            [m for m in chosen if m.for_baselines or name not in BASELINES],
        )
        for name, build in candidates.items()
    }
    # Parts left out for the baselines (rank histograms) are NaN there, shaped as the model's.
    model_parts = next(iter(scores.values()))
    datasets = [
        xr.Dataset(
            {
                part: parts[part] if part in parts else xr.full_like(value, np.nan)
                for part, value in model_parts.items()
            }
        )
        for parts in scores.values()
    ]
    return xr.concat(datasets, dim=pd.Index(list(candidates), name=FORECAST_DIM))


def _model_block(forecast: xr.DataArray, block: Block) -> xr.DataArray:
    model = forecast.isel(time=block.init, prediction_timedelta=block.lead).load()
    return model.reset_coords(drop=True).astype(np.float64)


def _persistence_block(
    truth: xr.DataArray, inits: xr.DataArray, leads: xr.DataArray
) -> xr.DataArray:
    return persistence_forecast(select_times(truth, inits).astype(np.float64), leads)


def _as_built(field: xr.DataArray) -> xr.DataArray:
    """A candidate built before the others: the climatology is every one's reference."""
    return field


def score_variable(
    forecast: xr.DataArray,
    truth: xr.DataArray,
    climatology: xr.DataArray,
    weights: xr.DataArray,
    model_name: str,
    climatology_source: str,
    progress=None,
    block_bytes: int = BLOCK_BYTES,
    metrics: Sequence[str] = DETERMINISTIC,
    climatology_ensemble: ProbabilisticClimatology | None = None,
) -> xr.Dataset:
    """Per-init parts of ``metrics`` (registry names) for the model, persistence,
    climatology and, with ``climatology_ensemble``, the probabilistic climatology; by
    default MSE, ACC and bias.

    ``forecast``: (time, prediction_timedelta, [realization,] [level,] latitude,
    longitude), lazy; with ``realization`` (members), the deterministic metrics score
    the ensemble mean. Persistence and climatology are one-member ensembles.
    ``truth``: (time, [level,] latitude, longitude) on the forecast's grid and
    levels, covering every init and valid time (checked by the caller), lazy.
    ``climatology``: ([dayofyear,] [hour,] [level,] latitude, longitude) likewise.
    ``climatology_ensemble``: source times drawn for every valid time of ``forecast``
    (:func:`stmodel.evaluation.probabilistic_climatology.draw`).
    ``progress``: a tqdm bar, advanced once per block.
    Returns the parts as data vars (mse, acc, bias by default) with dims
    (forecast, time, prediction_timedelta[, level][, rank]); ``forecast`` holds
    ``model_name``, ``persistence``, ``climatology`` [, ``probabilistic_climatology``].
    """
    chosen = resolve(metrics)
    baseline_members = 0 if climatology_ensemble is None else climatology_ensemble.members
    blocks = variable_blocks(forecast, baseline_members, block_bytes)
    rows: dict[tuple[int, int], list[xr.Dataset]] = {}  # init range -> blocks along leads
    for block in blocks:
        inits = forecast["time"].isel(time=block.init).reset_coords(drop=True)
        leads = forecast["prediction_timedelta"].isel(prediction_timedelta=block.lead)
        leads = leads.reset_coords(drop=True)
        valid_times = inits + leads  # [time, prediction_timedelta]
        truth_block = select_times(truth, valid_times).astype(np.float64)
        climatology_block = climatology_forecast(climatology, valid_times, climatology_source)
        climatology_block = climatology_block.astype(np.float64)
        candidates = {
            model_name: functools.partial(_model_block, forecast, block),
            PERSISTENCE: functools.partial(_persistence_block, truth, inits, leads),
            CLIMATOLOGY: functools.partial(_as_built, climatology_block),
        }
        if climatology_ensemble is not None:
            candidates[PROBABILISTIC_CLIMATOLOGY] = functools.partial(
                climatology_ensemble.forecast, truth, valid_times
            )
        scores = _per_init_scores(candidates, truth_block, climatology_block, weights, chosen)
        rows.setdefault((block.init.start, block.init.stop), []).append(scores)
        if progress is not None:
            progress.update(1)
    per_init = xr.combine_nested(list(rows.values()), concat_dim=["time", "prediction_timedelta"])
    order = [
        dim
        for dim in (FORECAST_DIM, "time", "prediction_timedelta", "level")
        if dim in per_init.dims
    ]
    return per_init.transpose(*order, ...)


def aggregate(per_init: xr.Dataset, metrics: Sequence[str] | None = None) -> xr.Dataset:
    """The scores of ``metrics`` from their per-init parts, per forecast, lead (and level).

    By default every registry metric whose parts are all in ``per_init`` (rmse, acc
    and bias for the default deterministic parts).
    """
    if metrics is None:
        metrics = [
            name
            for name, metric in REGISTRY.items()
            if all(part in per_init for part in metric.parts)
        ]
    return xr.Dataset({metric.name: metric.aggregate(per_init) for metric in resolve(metrics)})
