"""The main job end to end on the tiny preset: every stage runs, a rerun reuses them;
by default with the shipped pretrained models, with --train from scratch."""

import csv
import json
import shutil
from pathlib import Path

from stmodel.cli import main
from stmodel.models import DEFAULT_MODELS

TINY_DEMO = [
    "demo",
    "--preset",
    "tiny",
    "--train",
    "--config",
    "tiny",
    "--config-24h",
    "tiny-24h",
    # The machinery, not the skill, is under test: a few steps of each model.
    "--steps",
    "4",
    "--steps-24h",
    "2",
    "--lead-days",
    "1",
    "--quiet",
]


def _with_tiny_data(out: Path, tiny_simulated: Path) -> Path:
    """The demo's folder holding the session's tiny simulation, which the demo reuses as its
    own (a file made with the same preset): the simulation itself is tested in
    test_simulate.py."""
    (out / "data").mkdir(parents=True)
    shutil.copy(tiny_simulated, out / "data" / "tiny.nc")
    return out


def test_demo_runs_end_to_end_and_picks_up_where_it_stopped(tmp_path, tiny_simulated, capsys):
    out = _with_tiny_data(tmp_path / "demo", tiny_simulated)
    assert main([*TINY_DEMO, "--out", str(out)]) == 0
    summary = json.loads((out / "demo_summary.json").read_text())
    assert summary["checkpoints"] == [str(out / "train-24h"), str(out / "train-6h")]
    with open(summary["scorecard"]) as file:
        rows = list(csv.DictReader(file))
    forecasts = {row["forecast"] for row in rows}
    assert forecasts == {"stmodel-24h+6h", "persistence", "climatology"}
    model_leads = {float(row["lead_hours"]) for row in rows if row["forecast"] != "persistence"}
    assert model_leads == {6.0, 12.0, 18.0, 24.0}
    assert summary["maps"] and summary["skill_plots"]
    for path in summary["maps"] + summary["skill_plots"] + [summary["forecast"]]:
        assert Path(path).stat().st_size > 0, path
    forecast_mtime = (out / "forecast.nc").stat().st_mtime
    capsys.readouterr()

    # A rerun finds every stage done: no training, no new forecast.
    assert main([*TINY_DEMO, "--out", str(out)]) == 0
    assert (out / "forecast.nc").stat().st_mtime == forecast_mtime
    assert "training:" not in capsys.readouterr().err


def test_demo_forecasts_with_the_shipped_models_by_default(tmp_path, tiny_simulated):
    out = _with_tiny_data(tmp_path / "demo", tiny_simulated)
    assert main(["demo", "--preset", "tiny", "--lead-days", "1", "--quiet", "--out", str(out)]) == 0
    summary = json.loads((out / "demo_summary.json").read_text())
    assert summary["checkpoints"] == list(DEFAULT_MODELS)
    assert "train_s" not in summary["timings_s"] and not (out / "train-6h").exists()
    with open(summary["scorecard"]) as file:
        rows = [
            row
            for row in csv.DictReader(file)
            if row["forecast"] not in ("persistence", "climatology")
        ]
    day1 = {
        row["variable"]: float(row["value"])
        for row in rows
        if row["metric"] == "rmse"
        and row["level"] in ("500", "")
        and float(row["lead_hours"]) == 24.0
    }
    assert 0 < day1["geopotential"] < 1000  # a skilful model, not a random one

    # The ensemble of the shipped stochastic pair, beside the deterministic one's CRPS (MAE).
    assert summary["ensemble_plots"] and "ensemble_s" in summary["timings_s"]
    for path in summary["ensemble_plots"] + [summary["ensemble_forecast"]]:
        assert Path(path).stat().st_size > 0, path
    with open(summary["ensemble_scorecard"]) as file:
        rows = list(csv.DictReader(file))
    crps = {
        row["forecast"]: float(row["value"])
        for row in rows
        if row["metric"] == "crps" and row["variable"] == "geopotential" and row["level"] == "500"
    }
    assert set(crps) == {
        "stmodel-24h+6h-ens",
        "stmodel-24h+6h",
        "persistence",
        "climatology",
        "probabilistic_climatology",
    }
    assert 0 < crps["stmodel-24h+6h-ens"] < crps["stmodel-24h+6h"]  # the spread pays at day 1
    ssr = [
        float(row["value"])
        for row in rows
        if row["metric"] == "spread_skill_ratio" and row["forecast"] == "stmodel-24h+6h-ens"
    ]
    # Positive everywhere (members differ); its size is not judged on data not spun up.
    assert ssr and all(0 < r < 10 for r in ssr)
