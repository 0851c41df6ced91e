"""The scorecard: scores in long format, written as CSV and JSON, and printed as tables.

One row per (variable, level, lead, metric, forecast), for every scalar metric
scored (rmse, acc, bias; with an ensemble also crps, crps_ecdf,
ensemble_mean_rmse, spread, spread_skill_ratio). ``level`` is empty in
CSV (null in JSON) for surface fields; ``forecast`` is the model's name,
``persistence``, ``climatology`` or (beside an ensemble) ``probabilistic_climatology``;
``value`` is NaN (``nan`` in CSV, null in
JSON) where a score is undefined, such as the ACC of the climatology itself.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from stmodel.atomic_files import atomic_path
from stmodel.data.canonical import UNITS
from stmodel.evaluation.metric_registry import DETERMINISTIC, scalar_names
from stmodel.evaluation.scoring import (
    CLIMATOLOGY,
    FORECAST_DIM,
    PERSISTENCE,
    PROBABILISTIC_CLIMATOLOGY,
)

COLUMNS = ("variable", "level", "lead_hours", "metric", "forecast", "value")
METRICS = DETERMINISTIC  # those of a deterministic forecast
CSV_NAME = "scorecard.csv"
JSON_NAME = "scorecard.json"

# Fields every scorecard shows first (WeatherBench headline scores); surface
# fields are added to these.
HEADLINE_UPPER_AIR = (("geopotential", 500), ("temperature", 850))
# Beyond this many leads, the printed table shows the first lead and whole days only.
MAX_PRINTED_LEADS = 12


@dataclasses.dataclass(frozen=True)
class ScoreRow:
    variable: str
    level: int | None  # hPa; None for surface fields
    lead_hours: float
    metric: str  # a scalar metric of the registry: rmse, acc, bias, crps, ...
    forecast: str  # the model's name or a baseline's (scoring.BASELINES)
    value: float


Field = tuple[str, int | None]  # (variable, level)


def rows_from_scores(variable: str, scores: xr.Dataset) -> list[ScoreRow]:
    """Long-format rows from aggregated scores (data vars rmse, acc, bias, ... with dims
    (forecast, prediction_timedelta[, level])); non-scalar ones (rank histograms) are left
    out."""
    has_level = "level" in scores.dims
    order = (("level",) if has_level else ()) + ("prediction_timedelta", "metric", FORECAST_DIM)
    # One row per (level, lead, metric, forecast), in that order.
    table = (
        scores[scalar_names(scores)]
        .to_dataarray("metric")
        .transpose(*order)
        .reset_coords(drop=True)
        .to_dataframe(name="value")
        .reset_index()
    )
    lead_hours = table["prediction_timedelta"] / np.timedelta64(1, "h")
    levels = table["level"] if has_level else [None] * len(table)
    return [
        ScoreRow(
            variable=variable,
            level=None if level is None else int(level),
            lead_hours=_tidy_hours(float(hours)),
            metric=str(metric),
            forecast=str(forecast),
            value=float(value),
        )
        for level, hours, metric, forecast, value in zip(
            levels, lead_hours, table["metric"], table[FORECAST_DIM], table["value"]
        )
    ]


def _tidy_hours(hours: float) -> float | int:
    return int(hours) if float(hours).is_integer() else hours


def _write_text_atomically(path: Path, text: str) -> None:
    with atomic_path(path) as temporary:
        temporary.write_text(text)


def write_csv(rows: Iterable[ScoreRow], path: str | Path) -> Path:
    """Write the rows as CSV with exactly :data:`COLUMNS`."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow(
            [
                row.variable,
                "" if row.level is None else row.level,
                row.lead_hours,
                row.metric,
                row.forecast,
                repr(float(row.value)),
            ]
        )
    _write_text_atomically(Path(path), buffer.getvalue())
    return Path(path)


def write_json(rows: Iterable[ScoreRow], path: str | Path) -> Path:
    """Write the rows as a JSON list of objects with the keys of :data:`COLUMNS`."""
    records = [
        {**dataclasses.asdict(row), "value": None if math.isnan(row.value) else row.value}
        for row in rows
    ]
    _write_text_atomically(Path(path), json.dumps(records, indent=1) + "\n")
    return Path(path)


def read_csv(path: str | Path) -> list[ScoreRow]:
    """Read a scorecard CSV back into rows."""
    with open(path, newline="") as stream:
        return [
            ScoreRow(
                variable=record["variable"],
                level=int(record["level"]) if record["level"] else None,
                lead_hours=_tidy_hours(float(record["lead_hours"])),
                metric=record["metric"],
                forecast=record["forecast"],
                value=float(record["value"]),
            )
            for record in csv.DictReader(stream)
        ]


def fields_of(rows: Sequence[ScoreRow]) -> list[Field]:
    """Distinct (variable, level) pairs in the order they first appear."""
    return list(dict.fromkeys((row.variable, row.level) for row in rows))


def key_fields(rows: Sequence[ScoreRow]) -> list[Field]:
    """Z500, T850 and every surface field present; all fields if none of those is."""
    fields = fields_of(rows)
    chosen = [field for field in HEADLINE_UPPER_AIR if field in fields]
    chosen += [field for field in fields if field[1] is None]
    return chosen or fields


def field_label(field: Field) -> str:
    variable, level = field
    units = UNITS.get(variable)
    where = f" at {level} hPa" if level is not None else ""
    return f"{variable}{where}" + (f" ({units})" if units else "")


def _printed_leads(lead_hours: list[float]) -> list[float]:
    if len(lead_hours) <= MAX_PRINTED_LEADS:
        return lead_hours
    return [hours for index, hours in enumerate(lead_hours) if index == 0 or hours % 24 == 0]


def format_table(
    rows: Sequence[ScoreRow], model_name: str, fields: Sequence[Field] | None = None
) -> str:
    """Readable tables, one per field: lead against RMSE, ACC and bias of model and baselines."""
    fields = key_fields(rows) if fields is None else fields
    values = {
        (row.variable, row.level, row.lead_hours, row.metric, row.forecast): row.value
        for row in rows
    }
    columns = [
        ("rmse", model_name, "RMSE model"),
        ("rmse", PERSISTENCE, "RMSE persist."),
        ("rmse", CLIMATOLOGY, "RMSE clim."),
        ("acc", model_name, "ACC model"),
        ("acc", PERSISTENCE, "ACC persist."),
        ("bias", model_name, "bias model"),
    ]
    # An ensemble's headline probabilistic scores, where they were scored.
    scored = {(row.metric, row.forecast) for row in rows}
    columns += [
        (metric, forecast, title)
        for metric, forecast, title in (
            ("crps", model_name, "CRPS model"),
            ("crps", PERSISTENCE, "CRPS persist."),
            ("crps", PROBABILISTIC_CLIMATOLOGY, "CRPS prob. clim."),
            ("spread_skill_ratio", model_name, "SSR model"),
        )
        if (metric, forecast) in scored
    ]
    width = max(len(title) for _, _, title in columns) + 1
    blocks = [f"model: {model_name}"]
    for variable, level in fields:
        lead_hours = list(
            dict.fromkeys(
                row.lead_hours for row in rows if row.variable == variable and row.level == level
            )
        )
        lines = [
            field_label((variable, level)),
            f"{'lead (h)':>8}" + "".join(f"{title:>{width}}" for _, _, title in columns),
        ]
        for hours in _printed_leads(lead_hours):
            cells = []
            for metric, forecast, _ in columns:
                value = values.get((variable, level, hours, metric, forecast), math.nan)
                cells.append(f"{'n/a' if math.isnan(value) else format(value, '.5g'):>{width}}")
            lines.append(f"{hours:>8g}" + "".join(cells))
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)
