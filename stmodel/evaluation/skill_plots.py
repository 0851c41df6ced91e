"""RMSE and ACC against lead time, the model beside the baselines (PNG)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from stmodel.evaluation.scorecard import Field, ScoreRow
from stmodel.plot import plot_skill_vs_lead, save_figure


def plot_file_name(field: Field) -> str:
    variable, level = field
    return f"skill_{variable}" + (f"_{level}" if level is not None else "") + ".png"


def plot_skill(rows: Sequence[ScoreRow], field: Field, path: str | Path) -> Path:
    """One figure, RMSE and ACC panels against lead (days), for one (variable, level)."""
    return save_figure(plot_skill_vs_lead(rows, fields=[field]), path, dpi=110)
