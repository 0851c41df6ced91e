"""Skill-versus-lead plots and scorecards from the long-format scorecard table."""

import csv
import dataclasses
import json

import numpy as np
import pytest

from stmodel.errors import UserError
from stmodel.plot import load_scorecard, plot_scorecard, plot_skill_vs_lead
from stmodel.plot.skill import fields_of, relative_difference

COLUMNS = ("variable", "level", "lead_hours", "metric", "forecast", "value")


@dataclasses.dataclass(frozen=True)
class Row:  # the shape of stmodel.evaluation's ScoreRow
    variable: str
    level: int | None
    lead_hours: float
    metric: str
    forecast: str
    value: float


def scorecard_rows() -> list[Row]:
    """The model's RMSE is 80 % of persistence's; its ACC 0.05 higher; climatology flat."""
    rows = []
    for variable, level, size in (
        ("2m_temperature", None, 1.0),
        ("geopotential", 500, 300.0),
        ("temperature", 850, 2.0),
    ):
        for lead in (6, 12, 24, 48):
            persistence = size * (0.5 + lead / 24)
            scores = {
                "pangu-small": (0.8 * persistence, 0.95 - lead / 200, 0.1),
                "persistence": (persistence, 0.90 - lead / 200, 0.0),
                "climatology": (2.5 * size, float("nan"), 0.0),
            }
            for forecast, (rmse, acc, bias) in scores.items():
                for metric, value in (("rmse", rmse), ("acc", acc), ("bias", bias)):
                    rows.append(Row(variable, level, lead, metric, forecast, value))
    return rows


def write_csv(path, rows):
    with open(path, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(COLUMNS)
        for row in rows:
            cells = dataclasses.asdict(row)
            cells["level"] = "" if row.level is None else row.level  # as stmodel evaluate writes
            writer.writerow([cells[name] for name in COLUMNS])


def test_scorecard_loads_from_csv_json_and_rows_alike(tmp_path):
    rows = scorecard_rows()
    write_csv(tmp_path / "scorecard.csv", rows)
    (tmp_path / "scorecard.json").write_text(
        json.dumps(
            [
                {**dataclasses.asdict(row), "value": None if np.isnan(row.value) else row.value}
                for row in rows
            ]
        )
    )
    tables = [
        load_scorecard(tmp_path / "scorecard.csv"),
        load_scorecard(tmp_path / "scorecard.json"),
        load_scorecard(rows),
        load_scorecard([dataclasses.asdict(row) for row in rows]),
    ]
    for table in tables:
        assert tuple(table.columns) == COLUMNS
        assert len(table) == len(rows)
        assert table["level"].isna().sum() == 4 * 3 * 3  # the surface field's rows
        np.testing.assert_allclose(
            table["value"].to_numpy(), tables[0]["value"].to_numpy(), equal_nan=True
        )
    # headline fields first
    assert fields_of(tables[0]) == [
        ("geopotential", 500),
        ("temperature", 850),
        ("2m_temperature", None),
    ]


def test_scorecard_errors_name_the_problem(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("variable,level,lead_hours,value\nz,500,6,1.0\n")
    with pytest.raises(UserError, match=r"bad.csv: missing column\(s\) metric, forecast"):
        load_scorecard(bad)
    with pytest.raises(UserError, match="no such scorecard file"):
        load_scorecard(tmp_path / "absent.csv")
    two_models = scorecard_rows() + [
        dataclasses.replace(row, forecast="other")
        for row in scorecard_rows()
        if row.forecast == "pangu-small"
    ]
    with pytest.raises(UserError, match=r"2 models \(pangu-small, other\); say which"):
        plot_scorecard(two_models)
    with pytest.raises(UserError, match="no forecast 'ifs'"):
        plot_scorecard(scorecard_rows(), reference="ifs")


def test_skill_against_lead():
    figure = plot_skill_vs_lead(scorecard_rows(), metrics=("rmse", "acc"))
    axes = figure.axes
    assert len(axes) == 3 * 2
    assert axes[0].get_title() == "Z500 RMSE" and axes[0].get_ylabel() == "RMSE (m² s⁻²)"
    assert axes[1].get_title() == "Z500 ACC" and axes[1].get_ylabel() == "ACC"
    assert axes[0].get_xlabel() == "lead time (days)"
    rmse_lines = {line.get_label(): line for line in axes[0].lines}
    assert set(rmse_lines) == {"pangu-small", "persistence", "climatology"}
    np.testing.assert_allclose(rmse_lines["persistence"].get_xdata(), [0.25, 0.5, 1.0, 2.0])
    # the climatology has no ACC: no line rather than a line of NaN
    assert {line.get_label() for line in axes[1].lines} == {"pangu-small", "persistence"}


def test_scorecard_percentages_and_colours():
    rows = scorecard_rows()
    table = load_scorecard(rows)
    fields = fields_of(table)
    rmse, leads = relative_difference(table, fields, "rmse", "pangu-small", "persistence")
    np.testing.assert_allclose(leads, [6, 12, 24, 48])
    np.testing.assert_allclose(rmse, -20.0)  # 80 % of persistence everywhere
    figure = plot_scorecard(rows)
    (axes, _colour_bar) = figure.axes
    (image,) = axes.images
    assert image.cmap.name == "RdBu_r"  # lower RMSE -> negative -> blue
    assert image.norm.vmin == -image.norm.vmax
    assert "blue = better" in axes.get_title()
    assert [label.get_text() for label in axes.get_xticklabels()] == ["6 h", "12 h", "1 d", "2 d"]
    assert [label.get_text() for label in axes.get_yticklabels()] == ["Z500", "T850", "T2M"]
    acc_figure = plot_scorecard(rows, metric="acc")
    assert acc_figure.axes[0].images[0].cmap.name == "RdBu"  # higher ACC -> positive -> blue
