"""Probabilistic scores against lead and rank histograms, from what ``stmodel.evaluate`` returns.

Scores: the Dataset of :func:`stmodel.evaluate` (one data variable per field, dims
``metric``, ``forecast``, ``prediction_timedelta`` [, ``level``]); for an ensemble
it holds ``crps``, ``spread_skill_ratio`` ... beside rmse/acc/bias. Several such
Datasets draw as one figure, e.g. an ensemble's and a deterministic forecast's
scored as a one-member ensemble (``metrics=["crps", ...]``, its CRPS is its MAE):
pass a list, or a mapping {label: scores} to tell models of the same name apart.

Rank histograms: the Dataset of ``stmodel.evaluate(..., rank_histograms=True)``
(the second of the pair) or of ``rank_histogram.nc``, one data variable per field,
dims ``prediction_timedelta`` [, ``level``], ``rank``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from stmodel.errors import UserError
from stmodel.evaluation.baselines import CLIMATOLOGY, PERSISTENCE
from stmodel.evaluation.rank_histogram import RANK_DIM
from stmodel.plot import labels
from stmodel.plot.fields import (
    LEAD_DIM,
    LeadChoice,
    as_hours,
    lead_hours_of,
    pick_variable,
    select_level,
)
from stmodel.plot.skill import (
    BASELINE_STYLES,
    BASELINES,
    METRIC_NAMES,
    MODEL_COLOURS,
    metric_axis_label,
)

SCORE_DIMS = {"metric", "forecast", LEAD_DIM}
ScoresInput = xr.Dataset | Sequence[xr.Dataset] | Mapping[str, xr.Dataset]
# A spread-skill ratio of 1: the spread is as large as the ensemble mean's error.
IDEAL_SPREAD_SKILL = 1.0
# Rank histograms of more leads than this show this many, spread over the leads.
MAX_RANK_PANELS = 6
RANK_PANEL_COLUMNS = 3


def _labelled(scores: ScoresInput) -> list[tuple[str | None, xr.Dataset]]:
    """(label for the Dataset's model or None, Dataset) for each scores Dataset given."""
    if isinstance(scores, xr.Dataset):
        pairs = [(None, scores)]
    elif isinstance(scores, Mapping):
        pairs = [(str(label), dataset) for label, dataset in scores.items()]
    elif isinstance(scores, Sequence) and not isinstance(scores, str):
        pairs = [(None, dataset) for dataset in scores]
    else:
        pairs = [(None, scores)]
    for _, dataset in pairs:
        if isinstance(dataset, pd.DataFrame):
            raise UserError(
                "scores: a table (stmodel.evaluate's as_dataframe=True); pass the Dataset it "
                "returns by default, or draw the table with stmodel.plot.plot_skill_vs_lead"
            )
        if not (isinstance(dataset, xr.Dataset) and SCORE_DIMS <= set(dataset.dims)):
            raise UserError(
                f"scores: expected what stmodel.evaluate returns, a Dataset with dims metric, "
                f"forecast and {LEAD_DIM} (or a list or mapping of them), got "
                f"{type(dataset).__name__}"
                + (f" with dims {list(dataset.dims)}" if isinstance(dataset, xr.Dataset) else "")
            )
    if not pairs:
        raise UserError("scores: an empty list; expected what stmodel.evaluate returns")
    return pairs


def _model_of(dataset: xr.Dataset) -> str | None:
    """The model's name in the forecast dim: the model_name attribute, else the one
    forecast that is not a baseline."""
    names = [str(name) for name in dataset["forecast"].values]
    declared = dataset.attrs.get("model_name")
    if declared in names:
        return declared
    models = [name for name in names if name not in BASELINES]
    return models[0] if len(models) == 1 else None


def score_lines(
    scores: ScoresInput, variable: str, metric: str, *, level: float | None = None
) -> dict[str, xr.DataArray]:
    """label -> ``metric`` of that forecast against lead (dim prediction_timedelta), for
    ``variable`` at ``level``; forecasts whose scores are all NaN (a baseline's spread)
    are left out. A baseline in several Datasets is taken from the first."""
    lines: dict[str, xr.DataArray] = {}
    seen: set[str] = set()  # NaN lines too: a clash of names is one whatever the values
    for label, dataset in _labelled(scores):
        source = f"the scores of {dataset.attrs.get('model_name', 'a forecast')}"
        if variable not in dataset.data_vars:
            raise UserError(
                f"{source}: no variable {variable!r}; they have "
                f"{', '.join(map(str, dataset.data_vars)) or 'no variables'}"
            )
        field = select_level(dataset[variable], level, source)
        metrics = [str(name) for name in field["metric"].values]
        if metric not in metrics:
            raise UserError(
                f"{source}: no {metric} of {variable!r}; they have {', '.join(metrics)}. "
                f"An ensemble forecast (a realization dim) is scored with it; for a "
                f"deterministic one pass metrics=[..., {metric!r}] to stmodel.evaluate"
            )
        model = _model_of(dataset)
        for name in (str(name) for name in field["forecast"].values):
            shown = label if (label is not None and name == model) else name
            if shown in seen:
                if name in BASELINES:
                    continue
                raise UserError(
                    f"two scores Datasets both name a forecast {shown!r}; pass a mapping "
                    "{label: scores} to tell them apart"
                )
            seen.add(shown)
            values = field.sel(metric=metric, forecast=name, drop=True)
            if np.isfinite(values.values).any():
                lines[shown] = values
    return lines


def _chosen(lines: dict[str, xr.DataArray], forecasts: Sequence[str] | None, metric: str):
    if forecasts is None:
        return lines
    unknown = [name for name in forecasts if name not in lines]
    if unknown:
        raise UserError(
            f"no {metric} of forecast(s) {', '.join(map(repr, unknown))} to plot; there are "
            f"{', '.join(lines) or 'none'}"
        )
    return {name: lines[name] for name in forecasts}


def _metric_vs_lead(
    scores: ScoresInput,
    variable: str,
    metric: str,
    level: float | None,
    forecasts: Sequence[str] | None,
    axes: Axes | None,
    title_suffix: str = "",
):
    """Each forecast's ``metric`` against lead (days) on ``axes`` (a new figure when None):
    models solid, persistence and climatology in the scorecard plots' styles."""
    lines = _chosen(score_lines(scores, variable, metric, level=level), forecasts, metric)
    if not lines:
        raise UserError(f"every forecast's {metric} of {variable!r} is NaN: nothing to plot")
    if axes is None:
        figure = Figure(figsize=(5.2, 3.6), layout="constrained")
        axes = figure.subplots()
    else:
        figure = axes.figure
    models = [name for name in lines if name not in BASELINES]
    for name, values in lines.items():
        style = BASELINE_STYLES.get(name) or dict(
            color=MODEL_COLOURS[models.index(name) % len(MODEL_COLOURS)], linestyle="-", marker="o"
        )
        days = lead_hours_of(values[LEAD_DIM].values) / 24.0
        axes.plot(days, values.values, label=name, markersize=3, **style)
    # The level a single-level variable was scored at, though level=None picked it.
    level = labels.level_of(next(iter(lines.values())))
    field = (variable, None if level is None else int(level))
    symbol = labels.field_symbol(variable, level)
    axes.set_title(f"{symbol} {METRIC_NAMES.get(metric, metric)}{title_suffix}", fontsize=10)
    axes.set_xlabel("lead time (days)")
    axes.set_ylabel(metric_axis_label(field, metric))
    axes.grid(alpha=0.3)
    return figure, axes


def plot_crps_vs_lead(
    scores: ScoresInput,
    variable: str,
    *,
    level: float | None = None,
    forecasts: Sequence[str] | None = None,
    axes: Axes | None = None,
) -> Figure:
    """The CRPS of each forecast in ``scores`` against lead time (days), for one field.

    ``scores``: what :func:`stmodel.evaluate` returns, or a list or mapping {label:
    scores} of several (module docstring); a deterministic forecast has a CRPS (its MAE,
    as a one-member ensemble) when evaluated with ``metrics=["crps", ...]``.
    ``forecasts``: the labels to draw, in order (default: all with a CRPS). Pass
    ``axes`` to draw into an existing figure.
    """
    figure, axes = _metric_vs_lead(scores, variable, "crps", level, forecasts, axes)
    axes.set_ylim(bottom=0.0)
    axes.legend(fontsize=8)
    return figure


def plot_spread_skill_vs_lead(
    scores: ScoresInput,
    variable: str,
    *,
    level: float | None = None,
    forecasts: Sequence[str] | None = None,
    axes: Axes | None = None,
) -> Figure:
    """The spread-skill ratio of each ensemble in ``scores`` against lead (days), with
    the ideal value 1 marked: below 1 the ensemble is under-dispersive (too confident).

    Arguments as :func:`plot_crps_vs_lead`. By default persistence and climatology,
    one-member forecasts whose spread is 0, get no line; the probabilistic climatology,
    an ensemble, does.
    """
    if forecasts is None:
        ratios = score_lines(scores, variable, "spread_skill_ratio", level=level)
        forecasts = [name for name in ratios if name not in (PERSISTENCE, CLIMATOLOGY)]
    figure, axes = _metric_vs_lead(
        scores, variable, "spread_skill_ratio", level, forecasts, axes, " (best at 1)"
    )
    axes.axhline(
        IDEAL_SPREAD_SKILL,
        color="black",
        linewidth=0.8,
        linestyle="--",
        label=f"ideal ({IDEAL_SPREAD_SKILL:g})",
    )
    axes.set_ylim(bottom=0.0)
    axes.legend(fontsize=8)
    return figure


def _histogram_field(
    histograms: xr.Dataset | xr.DataArray, variable: str | None, level: float | None
) -> xr.DataArray:
    source = f"the rank histograms of {histograms.attrs.get('model_name', 'a forecast')}"
    if isinstance(histograms, xr.Dataset) and not histograms.data_vars:
        raise UserError(
            f"{source}: none (no data variables); only an ensemble forecast (a realization "
            "dim) has rank histograms"
        )
    field = pick_variable(histograms, variable)
    if RANK_DIM not in field.dims:
        raise UserError(
            f"{source}: variable {field.name!r} has no {RANK_DIM!r} dim (dims "
            f"{list(field.dims)}); expected rank histograms, as stmodel.evaluate(..., "
            "rank_histograms=True) returns them or rank_histogram.nc holds them"
        )
    return select_level(field, level, source)


def _chosen_leads(field: xr.DataArray, leads) -> list[int]:
    """Indices along the lead dim to draw: those asked for, else all (at most
    MAX_RANK_PANELS, spread from the first to the last)."""
    if LEAD_DIM not in field.dims:
        return []
    hours = lead_hours_of(field[LEAD_DIM].values)
    if leads is None:
        if len(hours) <= MAX_RANK_PANELS:
            return list(range(len(hours)))
        return sorted(set(np.linspace(0, len(hours) - 1, MAX_RANK_PANELS).round().astype(int)))
    wanted = leads if isinstance(leads, (list, tuple, np.ndarray)) else [leads]
    indices = []
    for lead in wanted:
        matches = np.flatnonzero(np.isclose(hours, as_hours(lead)))
        if not len(matches):
            raise UserError(
                f"the rank histograms of {field.name!r} have no lead of {as_hours(lead):g} h; "
                f"they have {', '.join(f'{h:g}' for h in hours)} h"
            )
        indices.append(int(matches[0]))
    return indices


def plot_rank_histogram(
    histograms: xr.Dataset | xr.DataArray,
    variable: str | None = None,
    *,
    level: float | None = None,
    leads: LeadChoice | Sequence[LeadChoice] | None = None,
) -> Figure:
    """Rank histograms of one field, one panel per lead: the frequency of each rank of
    the truth among the M members (normalised to sum 1), with the flat 1 / (M + 1) of a
    calibrated ensemble; a U shape is too little spread, a slope a bias.

    ``histograms``: the second of ``stmodel.evaluate(..., rank_histograms=True)``, the
    contents of rank_histogram.nc, or one of their variables. ``leads``: hours or
    timedeltas, one or a list (default: every lead, or six spread over them).
    """
    field = _histogram_field(histograms, variable, level)
    indices = _chosen_leads(field, leads)
    panels = [field.isel({LEAD_DIM: index}) for index in indices] or [field]
    if not any(np.isfinite(panel.values).any() for panel in panels):
        raise UserError(
            f"the rank histograms of {field.name!r} are NaN at every lead drawn (NaN in the "
            "forecast or the truth)"
        )
    ranks = field[RANK_DIM].values
    members = len(ranks) - 1
    flat = 1.0 / (members + 1)
    columns = min(len(panels), RANK_PANEL_COLUMNS)
    rows = math.ceil(len(panels) / columns)
    figure = Figure(figsize=(3.3 * columns, 2.6 * rows + 0.4), layout="constrained")
    grid = figure.subplots(rows, columns, squeeze=False, sharey=True)
    for index, axes in enumerate(grid.ravel()):
        if index >= len(panels):
            axes.set_visible(False)
            continue
        counts = panels[index]
        # Normalised here too, so raw counts from another tool draw the same way.
        frequency = counts / counts.sum(RANK_DIM)
        axes.bar(ranks, frequency.values, width=0.8, color="tab:blue")
        axes.axhline(
            flat,
            color="black",
            linewidth=0.8,
            linestyle="--",
            label=f"flat: 1/(M+1) = {flat:.3g}",
        )
        if LEAD_DIM in counts.coords:
            hours = float(lead_hours_of(counts[LEAD_DIM].values))
            axes.set_title(labels.format_lead(hours), fontsize=10)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_xlabel("rank of the truth")
        if index % columns == 0:
            axes.set_ylabel("frequency")
        if index == 0:
            axes.legend(fontsize=8)
    model = histograms.attrs.get("model_name")
    symbol = labels.field_symbol(str(field.name), labels.level_of(field))
    figure.suptitle(
        f"{symbol} rank histogram, {members} members" + (f" ({model})" if model else ""),
        fontsize=11,
    )
    return figure
