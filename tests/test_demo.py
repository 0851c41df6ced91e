"""The main job end to end on the tiny preset: every stage runs, a rerun reuses them."""

import csv
import json
from pathlib import Path

from stmodel.cli import main

TINY_DEMO = ["demo", "--preset", "tiny", "--config", "tiny", "--config-24h", "tiny-24h",
             "--lead-days", "1", "--quiet"]


def test_demo_runs_end_to_end_and_picks_up_where_it_stopped(tmp_path, capsys):
    out = tmp_path / "demo"  # its parent exists, nothing inside
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
