"""RMSE and ACC against lead time, the model beside the baselines (PNG), one file per key field.

Drawn by the commands after `stmodel.evaluation` has written the scorecard; the
evaluation itself draws nothing, so it does not depend on the plotting package.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from stmodel.evaluation.scorecard import Field, ScoreRow, key_fields
from stmodel.plot.saving import save_figure
from stmodel.plot.skill import plot_skill_vs_lead

ENSEMBLE_PANELS = ("crps", "spread_skill_ratio")


def plot_file_name(field: Field) -> str:
    variable, level = field
    return f"skill_{variable}" + (f"_{level}" if level is not None else "") + ".png"


def plot_skill(rows: Sequence[ScoreRow], field: Field, path: str | Path) -> Path:
    """One figure, RMSE and ACC panels against lead (days), for one (variable, level);
    for an ensemble forecast also CRPS and the spread-skill ratio."""
    scored = {row.metric for row in rows}
    metrics = ("rmse", "acc") + tuple(m for m in ENSEMBLE_PANELS if m in scored)
    return save_figure(plot_skill_vs_lead(rows, fields=[field], metrics=metrics), path, dpi=110)


def write_skill_plots(rows: Sequence[ScoreRow], out_dir: str | Path) -> list[Path]:
    """``skill_*.png`` of every key field of the scorecard into ``out_dir``."""
    return [
        plot_skill(rows, field, Path(out_dir) / plot_file_name(field)) for field in key_fields(rows)
    ]
