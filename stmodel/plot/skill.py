"""Skill against lead time and WeatherBench-style scorecards, from the long-format scorecard.

The scorecard table (written by ``stmodel evaluate`` as scorecard.csv / .json)
has one row per score with the columns ``variable, level, lead_hours, metric,
forecast, value``: ``level`` empty for surface fields, ``metric`` a name in
:data:`stmodel.evaluation.metric_registry.REGISTRY` (rmse, acc, bias, crps, ...),
``forecast`` the model's name or a baseline's (persistence, climatology,
probabilistic_climatology).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from stmodel.data.canonical import UNITS
from stmodel.errors import UserError
from stmodel.evaluation.baselines import BASELINES
from stmodel.evaluation.metric_registry import REGISTRY
from stmodel.plot import labels
from stmodel.plot.colours import symmetric_scale

COLUMNS = ("variable", "level", "lead_hours", "metric", "forecast", "value")
METRIC_NAMES = {name: metric.title for name, metric in REGISTRY.items()}
# For these metrics a larger value is better; for the others, a smaller (in magnitude).
HIGHER_IS_BETTER = tuple(name for name, metric in REGISTRY.items() if metric.higher_is_better)
# Best at zero: their size is compared, and plots draw the zero line.
SIGNED = tuple(name for name, metric in REGISTRY.items() if metric.signed)
DIMENSIONLESS = tuple(name for name, metric in REGISTRY.items() if metric.dimensionless)
BASELINE_STYLES = {
    "persistence": dict(color="0.45", linestyle="--", marker="s"),
    "climatology": dict(color="tab:green", linestyle=":", marker="^"),
    "probabilistic_climatology": dict(color="tab:olive", linestyle="-.", marker="v"),
}
MODEL_COLOURS = ("tab:blue", "tab:red", "tab:purple", "tab:orange", "tab:brown")
# Fields shown first when present (the WeatherBench headline scores).
HEADLINE_FIELDS = (("geopotential", 500), ("temperature", 850))

Field = tuple[str, int | None]  # (variable, level in hPa or None for surface fields)


def load_scorecard(source) -> pd.DataFrame:
    """The scorecard as a DataFrame with exactly :data:`COLUMNS`.

    ``source``: a path to scorecard.csv or scorecard.json, a DataFrame, or an
    iterable of rows (mappings, or dataclasses such as the evaluation's ScoreRow).
    ``level`` becomes a nullable integer (<NA> for surface fields).
    """
    name = "scorecard"
    if isinstance(source, (str, Path)):
        path = Path(source)
        name = str(path)
        if not path.exists():
            raise UserError(f"{path}: no such scorecard file")
        if path.suffix.lower() == ".json":
            table = pd.DataFrame(json.loads(path.read_text()))
        else:
            table = pd.read_csv(path, keep_default_na=True)
    elif isinstance(source, pd.DataFrame):
        table = source.copy()
    else:
        table = pd.DataFrame([_row_as_dict(row) for row in source])
    missing = [column for column in COLUMNS if column not in table.columns]
    if missing:
        raise UserError(
            f"{name}: missing column(s) {', '.join(missing)}; a scorecard has the "
            f"columns {', '.join(COLUMNS)}"
        )
    table = table.loc[:, list(COLUMNS)].copy()
    table["level"] = pd.to_numeric(table["level"], errors="coerce").round().astype("Int64")
    table["lead_hours"] = pd.to_numeric(table["lead_hours"], errors="coerce").astype(float)
    table["value"] = pd.to_numeric(table["value"], errors="coerce").astype(float)
    table["metric"] = table["metric"].astype(str).str.lower()
    table["variable"] = table["variable"].astype(str)
    table["forecast"] = table["forecast"].astype(str)
    return table


def _row_as_dict(row) -> dict:
    if dataclasses.is_dataclass(row):
        return dataclasses.asdict(row)
    if isinstance(row, Mapping):
        return dict(row)
    raise UserError(f"scorecard rows must be mappings or dataclasses, not {type(row).__name__}")


def fields_of(table: pd.DataFrame) -> list[Field]:
    """(variable, level) pairs: headline fields first, then the rest in table order."""
    seen = list(
        dict.fromkeys(
            (variable, None if pd.isna(level) else int(level))
            for variable, level in zip(table["variable"], table["level"])
        )
    )
    headline = [field for field in HEADLINE_FIELDS if field in seen]
    return headline + [field for field in seen if field not in headline]


def model_names(table: pd.DataFrame) -> list[str]:
    """Forecasts in the table that are not baselines."""
    return [name for name in dict.fromkeys(table["forecast"]) if name not in BASELINES]


def _rows_of(table: pd.DataFrame, field: Field, metric: str) -> pd.DataFrame:
    variable, level = field
    same_level = table["level"].isna() if level is None else (table["level"] == level)
    chosen = table[
        (table["variable"] == variable) & same_level.fillna(False) & (table["metric"] == metric)
    ]
    return chosen


def field_symbol(field: Field) -> str:
    return labels.field_symbol(*field)


def metric_axis_label(field: Field, metric: str) -> str:
    units = labels.pretty_units(UNITS.get(field[0], ""))
    name = METRIC_NAMES.get(metric, metric)
    return f"{name} ({units})" if units and metric not in DIMENSIONLESS else name


def plot_skill_vs_lead(
    scorecard,
    *,
    fields: Sequence[Field] | None = None,
    metrics: Sequence[str] = ("rmse", "acc"),
    forecasts: Sequence[str] | None = None,
) -> Figure:
    """One panel per (field, metric): each forecast's score against lead time in days.

    Models are solid lines; persistence, climatology and the probabilistic climatology
    dashed, dotted and dash-dotted.
    """
    table = load_scorecard(scorecard)
    fields = list(fields) if fields is not None else fields_of(table)
    if not fields:
        raise UserError("the scorecard has no rows to plot")
    forecasts = list(forecasts) if forecasts is not None else list(dict.fromkeys(table["forecast"]))
    models = [name for name in forecasts if name not in BASELINES]
    figure = Figure(figsize=(4.2 * len(metrics), 3.0 * len(fields)), layout="constrained")
    panels = figure.subplots(len(fields), len(metrics), squeeze=False)
    for row, field in enumerate(fields):
        for column, metric in enumerate(metrics):
            axes = panels[row, column]
            rows = _rows_of(table, field, metric)
            for forecast in forecasts:
                points = rows[(rows["forecast"] == forecast) & rows["value"].notna()]
                if points.empty:  # e.g. the ACC of the climatology, undefined
                    continue
                points = points.sort_values("lead_hours")
                style = BASELINE_STYLES.get(forecast) or dict(
                    color=MODEL_COLOURS[models.index(forecast) % len(MODEL_COLOURS)],
                    linestyle="-",
                    marker="o",
                )
                axes.plot(
                    points["lead_hours"] / 24.0,
                    points["value"],
                    label=forecast,
                    markersize=3,
                    **style,
                )
            if metric in SIGNED:
                axes.axhline(0.0, color="black", linewidth=0.6)
            axes.set_title(f"{field_symbol(field)} {METRIC_NAMES.get(metric, metric)}", fontsize=10)
            axes.set_xlabel("lead time (days)")
            axes.set_ylabel(metric_axis_label(field, metric))
            axes.grid(alpha=0.3)
            if axes.lines:
                axes.legend(fontsize=8)
    return figure


def relative_difference(
    table: pd.DataFrame, fields: Sequence[Field], metric: str, model: str, reference: str
) -> tuple[np.ndarray, np.ndarray]:
    """[field, lead] percent difference (model - reference) / |reference| and the lead hours."""
    leads = np.array(sorted(set(table.loc[table["forecast"] == model, "lead_hours"])), float)
    values = np.full((len(fields), len(leads)), np.nan)  # [field, lead]
    for row, field in enumerate(fields):
        rows = _rows_of(table, field, metric)
        model_scores = rows[rows["forecast"] == model].set_index("lead_hours")["value"]
        reference_scores = rows[rows["forecast"] == reference].set_index("lead_hours")["value"]
        for column, lead in enumerate(leads):
            if lead in model_scores.index and lead in reference_scores.index:
                base = float(reference_scores.loc[lead])
                ours = float(model_scores.loc[lead])
                if metric in SIGNED:  # compare the size of the bias
                    ours, base = abs(ours), abs(base)
                if base != 0 and np.isfinite(base) and np.isfinite(ours):
                    values[row, column] = 100.0 * (ours - base) / abs(base)
    return values, leads


def plot_scorecard(
    scorecard,
    *,
    model: str | None = None,
    reference: str = "persistence",
    metric: str = "rmse",
    fields: Sequence[Field] | None = None,
    max_leads: int = 20,
) -> Figure:
    """A WeatherBench-style scorecard: % difference of the model from a reference, per
    field and lead, blue where the model is better (lower RMSE or |bias|, higher ACC).
    """
    table = load_scorecard(scorecard)
    models = model_names(table)
    if model is None:
        if len(models) != 1:
            raise UserError(
                f"the scorecard holds {len(models)} models ({', '.join(models)}); "
                "say which with model=..."
            )
        model = models[0]
    for name, role in ((model, "model"), (reference, "reference")):
        if name not in set(table["forecast"]):
            raise UserError(
                f"the scorecard has no forecast {name!r} (asked for as {role}); it "
                f"has {', '.join(dict.fromkeys(table['forecast']))}"
            )
    fields = list(fields) if fields is not None else fields_of(table)
    values, leads = relative_difference(table, fields, metric, model, reference)
    if len(leads) > max_leads:  # keep cells readable: the first lead and whole days
        keep = [index for index, hours in enumerate(leads) if index == 0 or hours % 24 == 0]
        values, leads = values[:, keep[:max_leads]], leads[keep[:max_leads]]
    finite = values[np.isfinite(values)]
    if not finite.size:
        raise UserError(
            f"the scorecard has no {metric} of both {model!r} and {reference!r} at common leads"
        )
    # Blue = better: for ACC a positive difference is better, so flip the map.
    cmap = "RdBu" if metric in HIGHER_IS_BETTER else "RdBu_r"
    scale = symmetric_scale([finite], limit=float(np.abs(finite).max()), cmap=cmap)
    figure = Figure(
        figsize=(1.0 + 0.62 * len(leads), 1.4 + 0.42 * len(fields)), layout="constrained"
    )
    axes = figure.subplots()
    image = axes.imshow(values, cmap=scale.cmap, norm=scale.norm, aspect="auto")
    for row in range(values.shape[0]):
        for column in range(values.shape[1]):
            value = values[row, column]
            if np.isfinite(value):
                axes.text(
                    column,
                    row,
                    f"{value:+.0f}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if abs(value) > 0.6 * scale.norm.vmax else "black",
                )
    axes.set_xticks(
        range(len(leads)),
        [f"{hours / 24:g} d" if hours % 24 == 0 else f"{hours:g} h" for hours in leads],
        fontsize=8,
    )
    axes.set_yticks(range(len(fields)), [field_symbol(field) for field in fields], fontsize=8)
    axes.set_xlabel("lead time")
    figure.colorbar(
        image, ax=axes, label=f"{METRIC_NAMES.get(metric, metric)} difference (%)", shrink=0.9
    )
    axes.set_title(
        f"{METRIC_NAMES.get(metric, metric)} of {model} relative to {reference}: blue = better",
        fontsize=10,
    )
    return figure
