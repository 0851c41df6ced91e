"""RMSE and ACC against lead time, the model beside the baselines (PNG)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: works on machines without a display
import matplotlib.pyplot as plt  # noqa: E402

from stmodel.atomic_files import atomic_path  # noqa: E402
from stmodel.evaluation.scorecard import Field, ScoreRow, field_label  # noqa: E402
from stmodel.evaluation.scoring import CLIMATOLOGY, PERSISTENCE  # noqa: E402

BASELINE_STYLES = {PERSISTENCE: dict(color="tab:gray", linestyle="--", marker="s"),
                   CLIMATOLOGY: dict(color="tab:green", linestyle=":", marker="^")}
MODEL_STYLE = dict(color="tab:blue", linestyle="-", marker="o")


def plot_file_name(field: Field) -> str:
    variable, level = field
    return f"skill_{variable}" + (f"_{level}" if level is not None else "") + ".png"


def plot_skill(rows: Sequence[ScoreRow], field: Field, model_name: str,
               path: str | Path) -> Path:
    """One figure, RMSE and ACC panels against lead (days), for one (variable, level)."""
    variable, level = field
    path = Path(path)
    figure, (rmse_axes, acc_axes) = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for axes, metric, title in ((rmse_axes, "rmse", "RMSE"), (acc_axes, "acc", "ACC")):
        for forecast in (model_name, PERSISTENCE, CLIMATOLOGY):
            points = sorted((row.lead_hours / 24, row.value) for row in rows
                            if (row.variable, row.level, row.metric, row.forecast)
                            == (variable, level, metric, forecast) and not math.isnan(row.value))
            if not points:  # e.g. the ACC of the climatology, undefined
                continue
            days, values = zip(*points)
            style = MODEL_STYLE if forecast == model_name else BASELINE_STYLES[forecast]
            axes.plot(days, values, label=forecast, markersize=3, **style)
        axes.set_xlabel("lead time (days)")
        axes.set_title(title)
        axes.grid(alpha=0.3)
        axes.legend()
    rmse_axes.set_ylim(bottom=0)
    acc_axes.set_ylim(top=1)
    figure.suptitle(field_label(field))
    try:
        with atomic_path(path) as temporary:
            figure.savefig(temporary, format="png", dpi=110)
    finally:
        plt.close(figure)
    return path
