"""The public Python API: load models, forecast, evaluate and draw maps, xarray in and out.

Everything here is re-exported by ``stmodel`` itself::

    import stmodel

    forecast = stmodel.forecast(data, init_times="2000-01-04T00", leads="2d")
    scores = stmodel.evaluate(forecast, data)
    stmodel.plot_map(forecast, "geopotential", level=500, lead=48, path="z500.png")

The functions wrap what the command line does (``stmodel forecast``, ``stmodel
evaluate``): the same models, rollout, scores and maps. Heavy modules (JAX, xarray,
matplotlib) are imported inside the functions, so ``import stmodel`` stays cheap.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from stmodel.errors import UserError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import xarray as xr
    from matplotlib.figure import Figure

    from stmodel.checkpoints.global_model import CheckpointModel
    from stmodel.models import ShippedModel

    PathLike = str | os.PathLike
    ModelLike = str | os.PathLike | CheckpointModel
    Lead = int | str | datetime.timedelta | np.timedelta64
    Time = str | datetime.datetime | np.datetime64

__all__ = [
    "evaluate",
    "forecast",
    "list_models",
    "load_model",
    "plot_map",
    "plot_truth_forecast_error",
]


def list_models() -> list[ShippedModel]:
    """The pretrained models shipped with stmodel, longest time step first.

    Each has ``name`` (what :func:`load_model` and :func:`forecast` accept),
    ``dt_hours`` (its time step), ``summary`` and ``path`` (its folder).
    """
    from stmodel.models import shipped_models

    return shipped_models()


def load_model(name_or_directory: PathLike, step: int | None = None) -> CheckpointModel:
    """A model ready to forecast: a shipped model by name (see :func:`list_models`), a
    shipped model's folder, a training workdir or its ``checkpoints/`` folder.

    ``step``: the training step to load from a workdir (default: the latest); a shipped
    model holds one step only.
    """
    from stmodel.checkpoints.global_model import CheckpointModel

    if not isinstance(name_or_directory, (str, os.PathLike)):
        raise UserError(
            f"name_or_directory={name_or_directory!r}: expected a shipped model's name "
            "(stmodel.list_models()) or a checkpoint directory"
        )
    if step is not None and (isinstance(step, bool) or not isinstance(step, int) or step < 0):
        raise UserError(
            f"step={step!r}: expected a training step (a whole number >= 0), or None for the latest"
        )
    return CheckpointModel.load(name_or_directory, step=step)


def forecast(
    data: xr.Dataset | PathLike | Sequence[PathLike],
    init_times: Time | Sequence[Time],
    leads: Lead | Sequence[Lead],
    models: ModelLike | Sequence[ModelLike] | None = None,
    *,
    batch_size: int = 16,
    progress: bool = True,
    members: int = 1,
    seed: int = 0,
    perturb: float | bool = 0.0,
    lagged: int | None = None,
    lag_every: Lead | None = None,
) -> xr.Dataset:
    """Forecasts from initial states in ``data``, as an xarray Dataset in the WeatherBench 2
    layout: dims ``time`` (initial time), ``prediction_timedelta``, ``level``, ``latitude``,
    ``longitude``, exactly what ``stmodel forecast`` writes to its NetCDF file.

    Ensembles, as ``stmodel forecast --members/--seed/--perturb/--lagged/--lag-every``, add
    the dim ``realization`` (members 0..N-1) after ``time``: ``members`` per initial time
    (a deterministic model needs ``perturb``); ``perturb``: initial states plus smooth
    Gaussian noise of this many times the model's diff_std (True: 0.5); ``seed``: the
    noise's seed, the same forecast bit for bit whatever ``batch_size`` (states per batch:
    initial times x members); ``lagged``: members from the N latest initial times
    ``lag_every`` apart (default: the data's time step), verified at the same valid times.

    ``data``: a Dataset in any style the readers understand (ERA5 short names and
    ``latitude``/``longitude``/``pressure_level``, WeatherBench 2, canonical), or paths of
    such files. It must hold the models' variables and levels on their grid.
    ``init_times``: times in the data, e.g. ``"2000-01-04T00"``, datetime64 values, or
    ranges ``"START/END/EVERY"`` such as ``"2000-01-04/2000-01-06/24h"``.
    ``leads``: one lead (``48``, ``"36h"``, ``"10d"``): every lead up to it, spaced by the
    shortest model step, as ``stmodel forecast --lead``; or a list of leads: those only.
    ``models``: None (the shipped 24 h + 6 h pair, each lead reached with the fewest
    steps; for ``members`` > 1 without ``perturb`` or ``lagged``, the shipped stochastic
    pair stmodel-small-24h-ens + stmodel-small-6h-ens), or names, directories or models
    from :func:`load_model`, one per time step.

    Initial times whose rollout turns non-finite raise ``ForecastDiverged`` (a UserError)
    naming them, once every initial time is forecast; its ``forecast`` attribute holds the
    Dataset, NaN for those from the lead they diverged at.
    """
    from stmodel.data.readers import source_files
    from stmodel.forecasting.ensemble import DEFAULT_PERTURBATION, Ensemble
    from stmodel.forecasting.forecast import (
        ForecastDiverged,
        check_compatible,
        data_time_step,
        diverged_message,
        ensemble_attrs,
        forecast_attrs,
        forecast_into,
        parse_lead,
    )
    from stmodel.forecasting.forecast_file import ForecastInMemory

    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise UserError(
            f"batch_size={batch_size!r}: expected a positive number of states (initial "
            "times x members)"
        )
    ensemble = Ensemble(
        members=members, seed=seed, perturb=DEFAULT_PERTURBATION if perturb is True else perturb
    )
    loaded, sources, origins = _models(models, ensemble.members, ensemble.perturb, lagged)
    check_compatible(loaded, sources)
    ds = _canonical(data, "data")
    lead_hours = _lead_hours(leads, [m.dt_hours for m in loaded])
    times = _init_times(init_times, ds)
    lag = None
    if lagged is not None:
        if isinstance(lagged, bool) or not isinstance(lagged, int) or lagged < 1:
            raise UserError(f"lagged={lagged!r}: expected a positive number of members")
        every = parse_lead(str(lag_every), "lag_every") if lag_every else data_time_step(ds)
        lag = (lagged, every)
    attrs = forecast_attrs(origins, source_files(ds), loaded, source="stmodel.forecast")
    attrs |= ensemble_attrs(ensemble, lag, loaded)
    sinks: list[ForecastInMemory] = []

    def in_memory(lat, lon, n_members) -> ForecastInMemory:
        sinks.append(
            ForecastInMemory(times, lead_hours, loaded[0].layout, lat, lon, attrs, n_members)
        )
        return sinks[0]

    diverged = forecast_into(
        in_memory,
        loaded,
        ds,
        times,
        lead_hours,
        batch_size=batch_size,
        progress=progress,
        interrupted="forecast stopped; no forecast returned",
        ensemble=ensemble,
        lagged=lag,
        option={"members": "members", "perturb": "perturb", "seed": "seed"}
        | {"lagged": "lagged", "lag": "lag_every"},
    )
    result = sinks[0].dataset()
    if diverged:
        error = ForecastDiverged(
            f"{diverged_message(diverged)}; the error's `forecast` attribute keeps the other "
            "initial times' forecasts"
        )
        error.forecast = result
        raise error
    return result


def evaluate(
    forecast: xr.Dataset | PathLike,
    truth: xr.Dataset | PathLike | Sequence[PathLike],
    climatology: xr.Dataset | PathLike | None = None,
    *,
    variables: Sequence[str] | None = None,
    model_name: str | None = None,
    as_dataframe: bool = False,
    progress: bool = False,
    metrics: Sequence[str] | None = None,
    rank_histograms: bool = False,
    climatology_members: int | None = None,
    climatology_seed: int | None = None,
) -> xr.Dataset | pd.DataFrame | tuple[xr.Dataset | pd.DataFrame, xr.Dataset]:
    """Latitude-weighted RMSE, ACC and bias per variable, level and lead, of the forecast
    beside persistence and climatology, as ``stmodel evaluate`` computes them.

    ``forecast``: a Dataset in the WeatherBench 2 layout (what :func:`forecast` returns)
    or its file. ``truth``: a Dataset or files in any style the readers understand,
    covering the initial and valid times. ``climatology``: a climatology from ``stmodel
    data stats`` (Dataset or file); without it, the hour-of-day mean of the truth before
    the first initial time stands in (as on the command line), and where the truth has no
    earlier times, only RMSE and bias are scored (no ACC, no climatology baseline).

    A forecast with a ``realization`` dim (ensemble members) is also scored with the
    probabilistic metrics (crps, crps_ecdf, ensemble_mean_rmse, spread,
    spread_skill_ratio), its rmse/acc/bias being those of the ensemble mean; persistence
    and climatology count as one-member ensembles, and beside them is the probabilistic
    climatology (:mod:`stmodel.evaluation.probabilistic_climatology`): per valid time,
    ``climatology_members`` (default: the ensemble's size; 0: none; for a deterministic
    forecast, none unless given) truth states of the training period at the same time of
    day (and day of the year +- 7 days where the data have seasons), drawn with
    ``climatology_seed`` (default 0). ``metrics``: registry names
    (:mod:`stmodel.evaluation.metric_registry`) instead of that default.

    Returns a Dataset with one data variable per forecast variable, dims (``metric``:
    rmse/acc/bias ..., ``forecast``: the model's name, persistence, climatology
    [, probabilistic_climatology],
    ``prediction_timedelta`` [, ``level``]); or, with ``as_dataframe``, the long table
    of scorecard.csv (variable, level, lead_hours, metric, forecast, value).

    Rank histograms have a ``rank`` dim and are the model's only, so they are not in
    that Dataset: with ``rank_histograms=True`` the result is the pair (scores, rank
    histograms), the latter the Dataset ``stmodel evaluate`` writes to
    rank_histogram.nc (one data variable per scored variable, dims
    ``prediction_timedelta`` [, ``level``], ``rank``; no data variables for a
    deterministic forecast), as :func:`stmodel.plot.plot_rank_histogram` takes it.
    """
    import numpy as np
    import pandas as pd
    import xarray as xr

    from stmodel.evaluation import scorecard
    from stmodel.evaluation.climatology import KIND_ATTRIBUTE, climatology_kind, open_climatology
    from stmodel.evaluation.evaluate import model_rank_histograms, score_datasets
    from stmodel.evaluation.forecast_layout import model_name as default_model_name
    from stmodel.evaluation.forecast_layout import open_forecast, to_forecast_layout
    from stmodel.evaluation.metric_registry import REGISTRY, scalar_names
    from stmodel.evaluation.probabilistic_climatology import (
        DEFAULT_SEED,
        ProbabilisticClimatologyRequest,
    )
    from stmodel.evaluation.rank_histogram import rank_histogram_dataset
    from stmodel.evaluation.scoring import CLIMATOLOGY, FORECAST_DIM

    if isinstance(forecast, xr.Dataset):
        forecast_source = _dataset_source(forecast, "the forecast Dataset")
        forecast_ds = to_forecast_layout(forecast, forecast_source)
    elif isinstance(forecast, (str, os.PathLike)):
        forecast_source, forecast_ds = str(forecast), open_forecast(forecast)
    else:
        raise UserError(
            f"forecast: expected an xarray Dataset in the WeatherBench 2 layout (what "
            f"stmodel.forecast returns) or its file, got {type(forecast).__name__}"
        )
    name = model_name or default_model_name(forecast_ds, forecast_source)
    truth_ds = _canonical(truth, "truth")
    truth_source = _dataset_source(truth_ds, "the truth Dataset")
    climatology_source = None
    without_climatology = False
    if isinstance(climatology, xr.Dataset):
        climatology_source = _dataset_source(climatology, "the climatology Dataset")
        climatology = climatology.copy()
        climatology.attrs[KIND_ATTRIBUTE] = climatology_kind(climatology, climatology_source)
    elif isinstance(climatology, (str, os.PathLike)):
        climatology_source, climatology = str(climatology), open_climatology(climatology)
    elif climatology is not None:
        raise UserError(
            f"climatology: expected an xarray Dataset or file from `stmodel data stats`, or "
            f"None, got {type(climatology).__name__}"
        )
    elif not (truth_ds["time"].values < forecast_ds["time"].values.min()).any():
        # Nothing to derive a climatology from: score RMSE and bias against a NaN one.
        without_climatology = True
        climatology_source = "no climatology"
        climatology = xr.full_like(truth_ds.isel(time=0, drop=True), np.nan)
        climatology.attrs = {KIND_ATTRIBUTE: "time_mean"}
    if variables is not None and (
        isinstance(variables, str) or not all(isinstance(v, str) for v in variables)
    ):
        raise UserError(f"variables={variables!r}: expected a list of variable names")

    request = ProbabilisticClimatologyRequest(
        members=climatology_members,
        seed=DEFAULT_SEED if climatology_seed is None else climatology_seed,
    )
    skipped_ensemble = (
        without_climatology
        and climatology_members is None
        and "train_period" not in truth_ds.attrs
        and request.members_for(forecast_ds) > 0
    )
    if skipped_ensemble:
        # No training period and no truth before the forecasts: nothing to draw from.
        request = dataclasses.replace(request, members=0)
    scores = score_datasets(
        forecast_ds,
        forecast_source,
        truth_ds,
        truth_source,
        name,
        climatology,
        climatology_source,
        variables,
        show_progress=progress,
        metrics=metrics,
        probabilistic_climatology=request,
    )
    notes = [note.replace("pass --climatology", "pass climatology=") for note in scores.notes]
    if skipped_ensemble:
        notes.append(
            "the truth has no train_period attribute and no times before the first initial "
            "time: the probabilistic climatology is not scored"
        )
    if without_climatology:
        notes.append(
            "no climatology given and none derivable (the truth starts at the first initial "
            "time): ACC and the climatology baseline are not scored"
        )
    histograms = rank_histogram_dataset(model_rank_histograms(scores), name)
    if as_dataframe:
        rows = [
            dataclasses.asdict(row)
            for variable, aggregated in scores.by_variable.items()
            for row in scorecard.rows_from_scores(variable, aggregated)
            if not (
                without_climatology
                and (REGISTRY[row.metric].needs_climatology or row.forecast == CLIMATOLOGY)
            )
        ]
        table = pd.DataFrame(rows, columns=[f.name for f in dataclasses.fields(scorecard.ScoreRow)])
        table.attrs.update(model_name=name, notes=notes)
        return (table, histograms) if rank_histograms else table

    def reported(aggregated: xr.Dataset) -> list[str]:
        return [
            metric
            for metric in scalar_names(aggregated)
            if not (without_climatology and REGISTRY[metric].needs_climatology)
        ]

    result = xr.Dataset(
        {
            variable: xr.concat(
                [aggregated[metric] for metric in reported(aggregated)],
                dim=pd.Index(reported(aggregated), name="metric"),
            )
            for variable, aggregated in scores.by_variable.items()
        }
    )
    if without_climatology:
        result = result.drop_sel({FORECAST_DIM: CLIMATOLOGY})
    result.attrs = {
        "model_name": name,
        "climatology": climatology_source or "derived from the truth",
        "notes": "; ".join(notes),
    }
    return (result, histograms) if rank_histograms else result


def plot_map(
    data: xr.Dataset | xr.DataArray,
    variable: str | None = None,
    *,
    path: PathLike | None = None,
    **options: Any,
) -> Figure:
    """A map of one field of a forecast (WeatherBench 2 layout) or of canonical data.

    ``options`` are those of :func:`stmodel.plot.plot_map`: ``level``, ``time`` (an
    index or a time), ``lead`` (hours), ``projection``, ``extent``, ``cmap``, ``vmin``,
    ``vmax``, ``title`` ... With ``path``, the figure is also saved there (PNG, PDF, SVG).
    """
    from stmodel import plot

    figure = plot.plot_map(data, variable, **options)
    if path is not None:
        plot.save_figure(figure, path)
    return figure


def plot_truth_forecast_error(
    truth: xr.Dataset | xr.DataArray,
    forecast: xr.Dataset | xr.DataArray,
    variable: str | None = None,
    *,
    path: PathLike | None = None,
    **options: Any,
) -> Figure:
    """Truth, forecast and their difference side by side, for one field and lead.

    ``options`` are those of :func:`stmodel.plot.plot_truth_forecast_error` (``level``,
    ``time``, ``lead``, ``extent`` ...). With ``path``, the figure is also saved there.
    """
    from stmodel import plot

    figure = plot.plot_truth_forecast_error(truth, forecast, variable, **options)
    if path is not None:
        plot.save_figure(figure, path)
    return figure


def _models(
    models, members: int = 1, perturb: float = 0.0, lagged: int | None = None
) -> tuple[list[CheckpointModel], list[str], list[str]]:
    """(models, a description of each for messages, where each came from) from what
    `forecast` accepts; None: the shipped pair fit for the ensemble asked for."""
    from stmodel.checkpoints.global_model import CheckpointModel
    from stmodel.models import default_models, resolve_checkpoint

    if models is None:
        models = default_models(members, perturb, lagged)
    elif isinstance(models, (str, os.PathLike, CheckpointModel)):
        models = [models]
    elif not isinstance(models, Sequence) or not models:
        raise UserError(
            f"models={models!r}: expected None (the shipped pair), or model names, "
            "checkpoint directories or models from stmodel.load_model"
        )
    loaded, sources, origins = [], [], []
    for i, model in enumerate(models):
        if isinstance(model, CheckpointModel):
            loaded.append(model)
            sources.append(f"models[{i}] (a loaded {model.dt_hours} h model)")
            origins.append("a model given loaded")
        elif isinstance(model, (str, os.PathLike)):
            loaded.append(load_model(model))
            sources.append(str(model))
            origins.append(str(resolve_checkpoint(model).resolve()))
        else:
            raise UserError(
                f"models[{i}]={model!r}: expected a model name, a checkpoint directory or "
                "a model from stmodel.load_model"
            )
    return loaded, sources, origins


def _dataset_source(ds: xr.Dataset, default: str) -> str:
    from stmodel.data.readers import source_files

    files = source_files(ds) or [ds.encoding.get("source") or default]
    return ", ".join(files)


def _canonical(data, argument: str) -> xr.Dataset:
    """Canonical form of a Dataset (or the files) given as ``argument``, checked as the
    command line checks its inputs."""
    import xarray as xr

    from stmodel.data.readers import SOURCES_ATTR, canonicalise, open_canonical
    from stmodel.data.validation import validate

    if isinstance(data, xr.Dataset):
        source = data.encoding.get("source") or f"the Dataset given as {argument}"
        ds = canonicalise(data, source=source)
        if SOURCES_ATTR in data.attrs:  # already canonical: keep the files it came from
            ds.attrs[SOURCES_ATTR] = data.attrs[SOURCES_ATTR]
    elif isinstance(data, (str, os.PathLike)) or (
        isinstance(data, Sequence) and data and all(isinstance(p, (str, os.PathLike)) for p in data)
    ):
        ds = open_canonical(data)
    else:
        raise UserError(
            f"{argument}: expected an xarray Dataset or paths of data files, got "
            f"{type(data).__name__}"
        )
    if "time" not in ds.dims:
        raise UserError(f"{argument}: expected a time dimension; found dims {list(ds.dims)}")
    validate(ds)
    return ds


def _lead_hours(leads, model_hours: list[int]) -> list[int]:
    """Lead hours from one lead (all up to it) or a list (those), checked reachable."""
    import numpy as np

    from stmodel.forecasting.forecast import parse_lead
    from stmodel.forecasting.schedule import greedy_steps

    def hours(lead) -> int:
        if isinstance(lead, (datetime.timedelta, np.timedelta64)):
            lead = str(np.timedelta64(lead, "s").astype(np.int64) / 3600) + "h"
        if isinstance(lead, bool) or not isinstance(lead, (int, np.integer, str)):
            raise UserError(
                f"leads: {lead!r} is not a lead; expected hours (int) or text such as 36h or 10d"
            )
        return parse_lead(str(lead), "leads")

    step = min(model_hours)
    if isinstance(leads, (int, np.integer, str, datetime.timedelta, np.timedelta64)):
        longest = hours(leads)
        if longest % step:
            raise UserError(
                f"leads {leads!r}: expected a multiple of the shortest model step ({step} h)"
            )
        return list(range(step, longest + 1, step))
    if not isinstance(leads, Sequence) or not leads:
        raise UserError(f"leads={leads!r}: expected a lead such as '10d' or a list of leads")
    lead_hours = sorted({hours(lead) for lead in leads})
    for lead in lead_hours:
        try:
            greedy_steps(lead, model_hours)
        except ValueError:
            raise UserError(
                f"leads: {lead} h cannot be reached with model steps of "
                f"{sorted(set(model_hours))} h; expected sums of them"
            ) from None
    return lead_hours


def _init_times(init_times, ds: xr.Dataset) -> np.ndarray:
    """datetime64[ns] initial times from text (times or ranges) or datetime values."""
    import numpy as np

    from stmodel.forecasting.forecast import parse_init_times

    if isinstance(init_times, (str, datetime.datetime, np.datetime64)):
        init_times = [init_times]
    elif hasattr(init_times, "values") and not isinstance(init_times, Sequence):
        init_times = list(np.ravel(init_times.values))  # DataArray, Index
    elif isinstance(init_times, np.ndarray):
        init_times = list(init_times.ravel())
    if not isinstance(init_times, Sequence) or not init_times:
        raise UserError(
            f"init_times={init_times!r}: expected one or more initial times such as "
            "'2000-01-04T00', or a range '2000-01-04/2000-01-06/24h'"
        )
    times = []
    for value in init_times:
        if isinstance(value, str):
            times.extend(parse_init_times([value], ds, "init_times"))
            continue
        try:
            times.append(np.datetime64(value, "ns"))
        except (TypeError, ValueError):
            raise UserError(
                f"init_times: {value!r} is not a time; expected e.g. '2000-01-04T00' or "
                "numpy datetime64 values"
            ) from None
    return np.asarray(times, "datetime64[ns]")
