"""Scoring a forecast file against truth: the work behind `stmodel evaluate`."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from tqdm.auto import tqdm

from stmodel.atomic_files import make_folder
from stmodel.data.readers import describe_sources, open_canonical
from stmodel.errors import DataError, UserError
from stmodel.evaluation import partial_scores, scorecard
from stmodel.evaluation.area_weights import area_weights
from stmodel.evaluation.climatology import hour_of_day_climatology, open_climatology
from stmodel.evaluation.forecast_layout import forecast_variables, open_forecast, valid_times
from stmodel.evaluation.forecast_layout import model_name as default_model_name
from stmodel.evaluation.metric_registry import default_metric_names, resolve
from stmodel.evaluation.probabilistic_climatology import (
    ProbabilisticClimatology,
    ProbabilisticClimatologyRequest,
    draw,
)
from stmodel.evaluation.rank_histogram import FILE_NAME as RANK_HISTOGRAM_FILE
from stmodel.evaluation.rank_histogram import RankHistogram, write_rank_histograms
from stmodel.evaluation.scoring import (
    BASELINES,
    FORECAST_DIM,
    aggregate,
    score_variable,
    variable_blocks,
)
from stmodel.evaluation.truth_alignment import (
    check_times_available,
    on_forecast_grid,
    select_levels,
)
from stmodel.forecasting.forecast_file import DIVERGED_ATTR

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """What an evaluation produced."""

    model_name: str
    rows: list[scorecard.ScoreRow]
    csv_path: Path
    json_path: Path
    rank_histogram_path: Path | None  # rank_histogram.nc, for an ensemble forecast
    notes: list[str]  # things the user should know (skipped variables, derived climatology)


def _chosen_variables(
    forecast: xr.Dataset,
    forecast_path: str | Path,
    truth: xr.Dataset,
    truth_source: str,
    requested: Sequence[str] | None,
    notes: list[str],
) -> list[str]:
    scorable = forecast_variables(forecast)
    if requested:
        unknown = [name for name in requested if name not in scorable]
        if unknown:
            raise UserError(f"{forecast_path}: no forecast of {unknown}; it has {scorable}")
        missing = [name for name in requested if name not in truth.data_vars]
        if missing:
            raise DataError(
                f"{truth_source}: the truth has no variables {missing} to score the "
                f"forecast against; it has {sorted(truth.data_vars)}"
            )
        return list(requested)
    chosen = [name for name in scorable if name in truth.data_vars]
    skipped = [name for name in scorable if name not in truth.data_vars]
    if skipped:
        notes.append(f"not scored (absent from the truth): {', '.join(skipped)}")
    if not chosen:
        raise DataError(
            f"{truth_source}: none of the forecast's variables {scorable} is in the "
            f"truth, which has {sorted(truth.data_vars)}"
        )
    return chosen


@dataclasses.dataclass(frozen=True)
class Scores:
    """Aggregated scores of a forecast and the baselines."""

    model_name: str
    # variable -> rmse, acc, bias [and the probabilistic metrics, rank_histogram with
    # a rank dim] with dims (forecast, prediction_timedelta[, level])
    by_variable: dict[str, xr.Dataset]
    notes: list[str]


def model_rank_histograms(scores: Scores) -> dict[str, xr.DataArray]:
    """variable -> the model's rank histogram (prediction_timedelta, [level,] rank), for the
    variables scored with it (an ensemble's); the baselines have none."""
    return {
        variable: aggregated[RankHistogram.name].sel({FORECAST_DIM: scores.model_name}, drop=True)
        for variable, aggregated in scores.by_variable.items()
        if RankHistogram.name in aggregated
    }


def score_datasets(
    forecast: xr.Dataset,
    forecast_source: str,
    truth: xr.Dataset,
    truth_source: str,
    name: str,
    climatology: xr.Dataset | None = None,
    climatology_source: str | None = None,
    variables: Sequence[str] | None = None,
    show_progress: bool = True,
    cache: tuple[Callable, Callable] | None = None,
    metrics: Sequence[str] | None = None,
    probabilistic_climatology: ProbabilisticClimatologyRequest | None = None,
) -> Scores:
    """Scores of a forecast (WeatherBench 2 layout, as open_forecast gives it) against
    canonical truth, beside persistence and climatology, and beside an ensemble (a
    ``realization`` dim) also the probabilistic climatology.

    Without ``climatology``, the hour-of-day mean of the truth before the first init time
    is used. ``metrics``: registry names; by default rmse, acc, bias, and for a variable
    with a ``realization`` dim (ensemble members) also the probabilistic metrics, the
    deterministic ones then scoring the ensemble mean. ``probabilistic_climatology``: how
    many members (default: the forecast's ensemble size; 0 or a deterministic forecast:
    none) and which seed (:mod:`stmodel.evaluation.probabilistic_climatology`).
    ``cache``: (load(variable, metric names) -> per-init scores or None, save(variable,
    metric names, per-init scores)), so an interrupted evaluation resumes.
    """
    if metrics is not None:
        resolve(metrics)  # unknown names fail before any work
    if name in BASELINES:
        raise UserError(f"the model's name {name!r} is a baseline's; pass another with --name")
    notes: list[str] = []
    forecast = _without_diverged(forecast, forecast_source)
    truth = on_forecast_grid(truth, forecast, truth_source)
    chosen = _chosen_variables(forecast, forecast_source, truth, truth_source, variables, notes)
    check_times_available(truth, forecast["time"], truth_source, "init times (for persistence)")
    check_times_available(truth, valid_times(forecast), truth_source)
    request = probabilistic_climatology or ProbabilisticClimatologyRequest()
    climatology_ensemble: ProbabilisticClimatology | None = None
    if request.members_for(forecast) > 0:
        # Drawn for every valid time before any scoring, so a short period fails at once.
        climatology_ensemble = draw(
            truth,
            truth_source,
            valid_times(forecast),
            forecast["time"].values.min(),
            request.members_for(forecast),
            request,
        )
        notes.append(climatology_ensemble.description)

    if climatology is not None:
        climatology = on_forecast_grid(climatology, forecast, climatology_source)
        missing = [variable for variable in chosen if variable not in climatology.data_vars]
        if missing:
            raise DataError(
                f"{climatology_source}: no climatology of {missing}; it has "
                f"{sorted(climatology.data_vars)}"
            )
        derived_climatology = False
    else:
        first_init = forecast["time"].values.min()
        climatology_source = f"{truth_source} (hour-of-day mean before {pd.Timestamp(first_init)})"
        climatology = hour_of_day_climatology(truth[chosen], first_init, truth_source)
        derived_climatology = True
        notes.append(
            f"climatology: {climatology.attrs['description']}; pass --climatology "
            "for a proper one (ACC and the climatology baseline depend on it)"
        )

    weights = area_weights(forecast["latitude"])
    baseline_members = 0 if climatology_ensemble is None else climatology_ensemble.members
    total_blocks = sum(len(variable_blocks(forecast[v], baseline_members)) for v in chosen)
    by_variable: dict[str, xr.Dataset] = {}
    with tqdm(total=total_blocks, desc="evaluate", unit="block", disable=not show_progress) as bar:
        for variable in chosen:
            bar.set_postfix_str(variable)
            names = tuple(metrics) if metrics else default_metric_names(forecast[variable])
            per_init = cache[0](variable, names) if cache else None
            if per_init is None:
                per_init = _score_one(
                    forecast[variable],
                    truth[variable],
                    climatology[variable],
                    weights,
                    name,
                    truth_source,
                    climatology_source,
                    derived_climatology,
                    bar,
                    metrics=names,
                    climatology_ensemble=climatology_ensemble,
                )
                if cache:
                    cache[1](variable, names, per_init)
            else:
                bar.update(len(variable_blocks(forecast[variable], baseline_members)))
            by_variable[variable] = aggregate(per_init, names)
    return Scores(name, by_variable, notes)


def _without_diverged(forecast: xr.Dataset, source: str) -> xr.Dataset:
    """The forecast without the initial times `stmodel forecast` marked as diverged (NaN
    from the lead they diverged at, which would make every score NaN); a warning names
    the file and them. An incomplete file that does not say which is scored as it is."""
    reason = forecast.attrs.get("incomplete")
    if not reason:
        return forecast
    try:
        diverged = np.asarray(json.loads(forecast.attrs.get(DIVERGED_ATTR, "[]")), "datetime64[ns]")
    except (TypeError, ValueError):
        diverged = np.asarray([], "datetime64[ns]")
    diverged = diverged[np.isin(diverged, forecast["time"].values)]
    if diverged.size == 0:
        logger.warning("%s is incomplete (%s); scored as it is", source, reason)
        return forecast
    if diverged.size == forecast.sizes["time"]:
        raise UserError(
            f"{source}: every initial time's forecast diverged ({reason}); nothing to score"
        )
    logger.warning(
        "%s is incomplete: scored without its diverged initial times %s (%s)",
        source,
        ", ".join(str(t)[:16] for t in diverged),
        reason,
    )
    return forecast.drop_sel(time=diverged)


def evaluate_forecast(
    forecast_path: str | Path,
    truth_paths: Sequence[str | Path],
    out_dir: str | Path,
    climatology_path: str | Path | None = None,
    model_name: str | None = None,
    variables: Sequence[str] | None = None,
    show_progress: bool = True,
    metrics: Sequence[str] | None = None,
    probabilistic_climatology: ProbabilisticClimatologyRequest | None = None,
) -> Evaluation:
    """Score a WeatherBench 2 layout forecast and the baselines; write the scorecard.

    Writes ``scorecard.csv`` and ``scorecard.json`` into ``out_dir`` (the skill
    plots are :func:`stmodel.plot.skill_plots.write_skill_plots`), and for an
    ensemble forecast (a ``realization`` dim) ``rank_histogram.nc`` (see
    :mod:`stmodel.evaluation.rank_histogram`). ``metrics`` and
    ``probabilistic_climatology``: as in :func:`score_datasets`. Finished
    variables are kept while it runs, so an interrupted evaluation resumes where
    it stopped.
    """
    forecast_path, out_dir = Path(forecast_path), make_folder(out_dir, "--out folder")
    with contextlib.ExitStack() as open_files:
        forecast = open_forecast(forecast_path)
        open_files.callback(forecast.close)
        name = model_name or default_model_name(forecast, forecast_path)
        if name in BASELINES:
            raise UserError(f"the model's name {name!r} is a baseline's; pass another with --name")

        truth_source = describe_sources([str(path) for path in truth_paths])
        truth = open_canonical(list(truth_paths))
        open_files.callback(truth.close)
        climatology = None
        if climatology_path is not None:
            climatology = open_climatology(climatology_path)
            open_files.callback(climatology.close)

        request = probabilistic_climatology or ProbabilisticClimatologyRequest()

        def fingerprint(variable: str, metric_names: Sequence[str]) -> str:
            return partial_scores.fingerprint(
                forecast_path,
                truth_paths,
                climatology_path,
                variable,
                name,
                metric_names,
                baselines={"probabilistic_climatology": request.description()},
            )

        scores = score_datasets(
            forecast,
            str(forecast_path),
            truth,
            truth_source,
            name,
            climatology,
            None if climatology_path is None else str(climatology_path),
            variables,
            show_progress,
            probabilistic_climatology=request,
            cache=(
                lambda variable, names: partial_scores.load(
                    out_dir, variable, fingerprint(variable, names)
                ),
                lambda variable, names, per_init: partial_scores.save(
                    per_init, out_dir, variable, fingerprint(variable, names)
                ),
            ),
            metrics=metrics,
        )
        rows: list[scorecard.ScoreRow] = []
        for variable, aggregated in scores.by_variable.items():
            rows += scorecard.rows_from_scores(variable, aggregated)
        histograms = model_rank_histograms(scores)
        rank_histogram_path = None
        if histograms:
            rank_histogram_path = write_rank_histograms(
                histograms, name, out_dir / RANK_HISTOGRAM_FILE
            )

    csv_path = scorecard.write_csv(rows, out_dir / scorecard.CSV_NAME)
    json_path = scorecard.write_json(rows, out_dir / scorecard.JSON_NAME)
    partial_scores.clear(out_dir)
    return Evaluation(
        model_name=name,
        rows=rows,
        csv_path=csv_path,
        json_path=json_path,
        rank_histogram_path=rank_histogram_path,
        notes=scores.notes,
    )


def _score_one(
    forecast: xr.DataArray,
    truth: xr.DataArray,
    climatology: xr.DataArray,
    weights: xr.DataArray,
    name: str,
    truth_source: str,
    climatology_source: str,
    derived_climatology: bool,
    bar,
    metrics: Sequence[str],
    climatology_ensemble: ProbabilisticClimatology | None,
) -> xr.Dataset:
    if "level" in forecast.dims:
        levels = forecast["level"].values
        truth = select_levels(truth, levels, truth_source)
        climatology = select_levels(climatology, levels, climatology_source)
    else:
        for field, source in ((truth, truth_source), (climatology, climatology_source)):
            if "level" in field.dims:
                raise DataError(
                    f"{source}: variable '{forecast.name}' has levels "
                    f"{field['level'].values.tolist()} but the forecast has none"
                )
    if derived_climatology:
        # Derived lazily from the truth: compute it once, not once per valid time.
        climatology = climatology.load()
    return score_variable(
        forecast,
        truth,
        climatology,
        weights,
        name,
        climatology_source,
        progress=bar,
        metrics=metrics,
        climatology_ensemble=climatology_ensemble,
    )
