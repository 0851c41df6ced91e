"""Shipped pretrained models: listed, loadable by name, the default of `stmodel forecast`,
and refused in one line on data that does not match them."""

import subprocess
import sys

import jax
import numpy as np
import xarray as xr

from stmodel.checkpoints.global_model import CheckpointModel
from stmodel.cli import main
from stmodel.models import DEFAULT_MODELS, PRETRAINED_DIR, resolve_checkpoint, shipped_models

MAX_SHIPPED_BYTES = 60e6


def test_default_models_are_shipped_small_and_carded():
    names = {m.name for m in shipped_models()}
    assert set(DEFAULT_MODELS) <= names
    total = sum(p.stat().st_size for p in PRETRAINED_DIR.rglob("*") if p.is_file())
    assert total <= MAX_SHIPPED_BYTES
    for model in shipped_models():
        card = (model.path / "MODEL_CARD.md").read_text()
        for heading in ("## Data", "## Recipe", "## Test scores", "## Reproduce"):
            assert heading in card, f"{model.name}: model card lacks {heading}"


def test_models_command_lists_them(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in DEFAULT_MODELS:
        assert name in out
    assert "(default)" in out


def test_a_name_works_where_a_directory_does():
    assert resolve_checkpoint(DEFAULT_MODELS[0]) == PRETRAINED_DIR / DEFAULT_MODELS[0]
    model = CheckpointModel.load("stmodel-small-6h")
    assert model.dt_hours == 6 and model.model_config.grid == (32, 64)
    assert all(np.all(np.isfinite(np.asarray(x))) for x in jax.tree.leaves(model.params))


def test_forecast_without_checkpoint_uses_the_default_pair(tiny_simulated, tmp_path):
    out = tmp_path / "forecast.nc"
    assert (
        main(
            [
                "forecast",
                "--data",
                str(tiny_simulated),
                "--init",
                "2000-01-04T00",
                "--lead",
                "30h",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    forecast = xr.open_dataset(out)
    leads = forecast["prediction_timedelta"].values / np.timedelta64(1, "h")
    assert list(leads) == [6, 12, 18, 24, 30]
    steps = sorted((CheckpointModel.load(name).dt_hours for name in DEFAULT_MODELS), reverse=True)
    assert forecast.attrs["model_name"] == "stmodel-" + "+".join(f"{dt}h" for dt in steps)
    assert np.isfinite(forecast["geopotential"]).all()


def test_data_on_another_grid_stops_with_one_line_naming_the_difference(tiny_simulated, tmp_path):
    coarse = xr.open_dataset(tiny_simulated).isel(lat=slice(0, None, 2), lon=slice(0, None, 2))
    path = tmp_path / "coarse.nc"
    coarse.to_netcdf(path)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "stmodel",
            "forecast",
            "--data",
            str(path),
            "--init",
            "2000-01-04T00",
            "--lead",
            "1d",
            "--out",
            str(tmp_path / "f.nc"),
            "--quiet",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    message = result.stderr.strip()
    assert "\n" not in message and "Traceback" not in message
    assert "lat grid (16 points" in message and "(32 points" in message
    assert not (tmp_path / "f.nc").exists()


def test_unknown_name_lists_the_shipped_ones(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "stmodel",
            "forecast",
            "--checkpoint",
            "no-such-model",
            "--data",
            "x.nc",
            "--init",
            "2000-01-04",
            "--out",
            str(tmp_path / "f.nc"),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert DEFAULT_MODELS[0] in result.stderr and "Traceback" not in result.stderr


def test_export_round_trip_gives_the_same_forecast_as_the_workdir(tiny_simulated, tmp_path):
    workdir = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--config",
                "tiny",
                "--data",
                str(tiny_simulated),
                "--workdir",
                str(workdir),
                "--steps",
                "2",
                "--quiet",
                "validate_every=0",
            ]
        )
        == 0
    )
    card = tmp_path / "card.md"
    card.write_text("# a card\n")
    for dtype in ("float32", "bfloat16"):
        exported = tmp_path / f"export-{dtype}"
        assert (
            main(
                [
                    "models",
                    "export",
                    str(workdir),
                    "--out",
                    str(exported),
                    "--card",
                    str(card),
                    "--dtype",
                    dtype,
                ]
            )
            == 0
        )
        assert not list(exported.glob("*opt*"))
        original, loaded = CheckpointModel.load(workdir), CheckpointModel.load(exported)
        tolerance = 0 if dtype == "float32" else 1e-2
        for a, b in zip(jax.tree.leaves(original.params), jax.tree.leaves(loaded.params)):
            np.testing.assert_allclose(
                np.asarray(b),
                np.asarray(a),
                rtol=tolerance,
                atol=tolerance * float(np.abs(a).max()),
            )
        np.testing.assert_array_equal(loaded.lat, original.lat)
        assert loaded.layout == original.layout and loaded.dt_hours == original.dt_hours


def test_an_ensemble_without_models_takes_the_stochastic_pair():
    from stmodel.models import DEFAULT_ENSEMBLE_MODELS, default_models

    assert default_models() == list(DEFAULT_MODELS)
    assert default_models(members=8) == list(DEFAULT_ENSEMBLE_MODELS)
    # The baselines of a deterministic model stay with the deterministic pair.
    assert default_models(members=8, perturb=0.5) == list(DEFAULT_MODELS)
    assert default_models(members=1, lagged=4) == list(DEFAULT_MODELS)
    shipped = {m.name for m in shipped_models()}
    assert set(DEFAULT_ENSEMBLE_MODELS) <= shipped
    for name in DEFAULT_ENSEMBLE_MODELS:
        assert CheckpointModel.load(name).model_config.noise_dim > 0, name
