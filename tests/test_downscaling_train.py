"""Tiny end-to-end downscaling: pretrained checkpoint -> fine-tune -> apply -> evaluate,
through the command line, on a synthetic global field and a region crossing 0 deg."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pandas as pd
import pytest
import scipy.ndimage
import xarray as xr

from stmodel.checkpoints.global_model import CheckpointModel
from stmodel.checkpoints.store import CheckpointStore, parameter_checksum
from stmodel.cli import main
from stmodel.data.layout import NormalisationStats
from stmodel.data.pipeline import constant_fields, default_layout
from stmodel.downscaling.baselines import GridInterpolator
from stmodel.downscaling.checkpoint import DownscalingCheckpoint
from stmodel.downscaling.coarsen import coarsen
from stmodel.downscaling.config import DownscaleConfig
from stmodel.downscaling.data import MARGIN_CELLS
from stmodel.downscaling.region import RegionBox, select_region
from stmodel.downscaling.training import train_downscaler
from stmodel.errors import Interrupted, UserError
from stmodel.evaluation.area_weights import area_weights
from stmodel.model.parameter_names import parameter_names
from stmodel.training import metrics_log
from stmodel.training.config import OptimizerConfig, TrainConfig
from stmodel.training.forecasting_task import model_config_for

LEVELS = np.array([50, 500, 850, 1000], np.int32)
REPO = Path(__file__).resolve().parents[1]
REGION = "20,70,-30,60"  # crosses 0 deg: 331.875 .. 56.25 E on the 5.625 deg grid
# The fine-tuning of the `case` fixture; the tests that compare with it run the same.
THREE_STEPS = ("--steps", "3", "--batch-size", "2", "--checkpoint-every", "2")
SMALL = (("dim", 8), ("heads", [1, 2, 2, 1]), ("depths", [1, 1, 1, 1]))


def _fine_truth(n_times: int = 24) -> xr.Dataset:
    """Smooth waves with a small-scale part, on the 5.625 deg global grid."""
    lat = np.linspace(-87.1875, 87.1875, 32)
    lon = np.arange(64) * 5.625
    times = pd.date_range("2001-01-01", periods=n_times, freq="6h").values
    t = np.arange(n_times)[:, None, None, None]
    la = np.deg2rad(lat)[None, None, :, None]
    lo = np.deg2rad(lon)[None, None, None, :]
    level = LEVELS[None, :, None, None] / 1000.0
    wave = np.cos(3 * lo - 0.3 * t) * np.cos(la) + 0.3 * np.sin(11 * lo + 0.2 * t) * np.cos(7 * la)
    data = {
        "geopotential": 9.80665 * 7000 * np.log(1 / level) + 500 * wave,
        "temperature": 230 + 40 * np.cos(la) * level + 5 * wave,
        "u_component_of_wind": 20 * np.cos(2 * la) + 8 * wave,
    }
    surface = (1.0e5 + 800 * wave[:, 0]).astype(np.float32)
    ds = xr.Dataset(
        {
            name: (
                ("time", "level", "lat", "lon"),
                np.broadcast_to(value, (n_times, 4, 32, 64)).astype(np.float32),
            )
            for name, value in data.items()
        },
        coords={"time": times, "level": LEVELS, "lat": lat, "lon": lon},
    )
    ds["surface_pressure"] = (("time", "lat", "lon"), surface)
    ds.attrs.update(
        train_period="2001-01-01/2001-01-04",
        validation_period="2001-01-05/2001-01-05",
        test_period="2001-01-06/2001-01-06",
    )
    return ds


def _save_pretrained(coarse: xr.Dataset, workdir) -> None:
    """A global checkpoint on the coarse grid as `stmodel train` writes one (weights untrained:
    these tests are about the downscaling machinery)."""
    config = TrainConfig(model_preset="tiny", model_overrides=SMALL, steps=1)
    layout = default_layout(coarse)
    upper = np.stack([coarse[v].values for v in layout.upper_air], -1)  # [t, level, lat, lon, var]
    surface = np.stack([coarse[v].values for v in layout.surface], -1)
    norm = NormalisationStats(
        upper.mean((0, 2, 3)),
        upper.std((0, 2, 3)),
        np.diff(upper, axis=0).std((0, 2, 3)),
        surface.mean((0, 1, 2)),
        surface.std((0, 1, 2)),
        np.diff(surface, axis=0).std((0, 1, 2)),
    )
    model = CheckpointModel.initialise(
        model_config_for(config, layout, (coarse.sizes["lat"], coarse.sizes["lon"])),
        layout,
        norm,
        constant_fields(coarse, layout),
        lat=coarse["lat"].values,
        lon=coarse["lon"].values,
        dt_hours=config.dt_hours,
        seed=config.seed,
        train_config=config.to_dict(),
    )
    store = CheckpointStore(workdir / "checkpoints", async_save=False)
    # Parameters only: what `stmodel train` writes, less the optimiser state nobody reads here.
    store.save(
        0,
        {"params": model.params, "static": model.static_arrays()},
        model.metadata(0),
        force=True,
    )
    store.close()


def _train_command(root, workdir, *options, coarse=None, region=REGION) -> list[str]:
    """`downscale train` of the case in `root` (its pretrained model, coarse and fine files)."""
    return [
        "downscale",
        "train",
        "--pretrained",
        str(root / "pretrained"),
        "--coarse",
        str(coarse or root / "coarse.nc"),
        "--fine",
        str(root / "fine.nc"),
        "--region",
        region,
        "--workdir",
        str(workdir),
        *options,
        "--quiet",
    ]


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    root = tmp_path_factory.mktemp("downscaling")
    fine = _fine_truth()
    fine.to_netcdf(root / "fine.nc")
    coarse = coarsen(fine, 2)
    coarse.to_netcdf(root / "coarse.nc")
    _save_pretrained(coarse.load(), root / "pretrained")
    workdir = root / "finetuned"
    main(_train_command(root, workdir, *THREE_STEPS))
    return root


def test_fine_tune_writes_checkpoint_that_reloads(case):
    summary = json.loads((case / "finetuned" / "summary.json").read_text())
    assert summary["final_step"] == 3 and np.isfinite(summary["loss"])
    assert summary["start_step"] == 0
    assert summary["command"].startswith("stmodel downscale train --pretrained ")
    assert summary["transfer"]["copied"] > 0 and summary["transfer"]["bias_mapped"] > 0
    assert "head.upper.kernel.value" in summary["transfer"]["new"]
    lines = (case / "finetuned" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2, 3]
    loaded = DownscalingCheckpoint.load(case / "finetuned")
    assert loaded.step == 3
    assert parameter_checksum(loaded.params) == summary["parameter_checksum"]
    np.testing.assert_allclose(loaded.grids["fine_lon"][[0, -1]], [-28.125, 56.25])
    assert loaded.layout.upper_air == ("geopotential", "temperature", "u_component_of_wind")


def test_rerun_with_other_settings_is_refused(case):
    with pytest.raises(UserError, match="different settings .*mode"):
        train_downscaler(
            DownscaleConfig(mode="frozen", steps=3, batch_size=2),
            case / "pretrained",
            [case / "coarse.nc"],
            [case / "fine.nc"],
            RegionBox.parse(REGION),
            case / "finetuned",
            progress=False,
        )


def test_rerun_on_another_region_or_data_is_refused(case, tmp_path):
    other_fine = tmp_path / "other_fine.nc"
    xr.open_dataset(case / "fine.nc").to_netcdf(other_fine)
    with pytest.raises(UserError, match=r"different settings .*--fine fine.nc -> other_fine.nc"):
        train_downscaler(
            DownscaleConfig(steps=3, batch_size=2, checkpoint_every=2),
            case / "pretrained",
            [case / "coarse.nc"],
            [other_fine],
            RegionBox.parse(REGION),
            case / "finetuned",
            progress=False,
        )


def test_apply_analysis_and_forecast_layout_agree(case, tmp_path):
    out = tmp_path / "fine_analysis.nc"
    assert (
        main(
            [
                "downscale",
                "apply",
                "--checkpoint",
                str(case / "finetuned"),
                "--coarse",
                str(case / "coarse.nc"),
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    analysis = xr.open_dataset(out)
    assert analysis["temperature"].dims == ("time", "level", "lat", "lon")
    assert analysis.sizes["lat"] == 8 and analysis.sizes["lon"] == 16
    np.testing.assert_allclose(
        analysis["lon"].values[:6], [-28.125, -22.5, -16.875, -11.25, -5.625, 0.0]
    )
    assert np.isfinite(analysis["temperature"].values).all()

    # The same coarse states as a WB2-layout forecast: init t, leads 6 h and 12 h hold the
    # states at t + 6 h and t + 12 h, with latitude/longitude names and longitudes [0, 360).
    coarse = xr.open_dataset(case / "coarse.nc")
    inits = coarse["time"].values[:4]
    leads = np.array([6, 12], "timedelta64[h]").astype("timedelta64[ns]")
    stacked = xr.concat(
        [coarse.sel(time=inits + lead).assign_coords(time=inits) for lead in leads],
        dim="prediction_timedelta",
    )
    forecast = (
        stacked.assign_coords(prediction_timedelta=leads)
        .rename(lat="latitude", lon="longitude")
        .transpose("time", "prediction_timedelta", ...)
    )
    forecast.to_netcdf(tmp_path / "forecast.nc")
    fine_forecast_path = tmp_path / "fine_forecast.nc"
    assert (
        main(
            [
                "downscale",
                "apply",
                "--checkpoint",
                str(case / "finetuned"),
                "--coarse",
                str(tmp_path / "forecast.nc"),
                "--out",
                str(fine_forecast_path),
                "--quiet",
            ]
        )
        == 0
    )
    fine_forecast = xr.open_dataset(fine_forecast_path)
    assert fine_forecast["temperature"].dims == (
        "time",
        "prediction_timedelta",
        "level",
        "latitude",
        "longitude",
    )
    for k, lead in enumerate(leads):
        expected = analysis["temperature"].sel(time=inits + lead).values
        np.testing.assert_allclose(
            fine_forecast["temperature"].isel(prediction_timedelta=k), expected, rtol=1e-5
        )


def test_evaluate_scores_model_and_baselines(case, tmp_path):
    out = tmp_path / "scores.json"
    assert (
        main(
            [
                "downscale",
                "evaluate",
                "--checkpoint",
                str(case / "finetuned"),
                "--name",
                "model",
                "--coarse",
                str(case / "coarse.nc"),
                "--fine",
                str(case / "fine.nc"),
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    scores = json.loads(out.read_text())
    assert scores["period"] == "2001-01-06/2001-01-06" and scores["n_times"] == 4
    row = scores["rmse"]["temperature_850"]
    assert set(row) == {"model", "nearest", "bilinear", "bicubic", "bilinear_mean_residual"}
    assert all(np.isfinite(v) and v > 0 for v in row.values())
    assert row["bicubic"] < row["nearest"]
    # The bicubic score by hand: area-weighted per-time MSE, mean over times, root last.
    fine = select_region(xr.open_dataset(case / "fine.nc"), RegionBox.parse(REGION))
    test = fine.sel(time="2001-01-06")
    coarse = select_region(
        xr.open_dataset(case / "coarse.nc"), RegionBox.parse(REGION), margin=MARGIN_CELLS * 11.25
    ).sel(time=test["time"])
    interpolate = GridInterpolator.between(
        coarse["lat"].values,
        coarse["lon"].values,
        fine["lat"].values,
        fine["lon"].values,
        "bicubic",
    )
    field = interpolate(coarse["temperature"].sel(level=850).values, lat_axis=1)
    weights = area_weights(fine["lat"]).values[None, :, None]
    mse = ((field - test["temperature"].sel(level=850).values) ** 2 * weights).mean(axis=(1, 2))
    np.testing.assert_allclose(row["bicubic"], np.sqrt(mse.mean()), rtol=1e-4)


def test_evaluate_corner_aligned_baselines_follow_scipy_zoom(case, tmp_path, capsys):
    """--corner-aligned-baselines adds the baselines as scipy.ndimage.zoom computes them (the
    protocol of figures published that way), and every score also unweighted; it needs a
    coarse file that is the coarsening of exactly the region."""
    # A box whose edges are fine cell centres, so the coarsening of just the box covers it.
    aligned = "25.3125,64.6875,-28.125,56.25"
    fine = select_region(xr.open_dataset(case / "fine.nc"), RegionBox.parse(aligned))
    assert (fine.sizes["lat"], fine.sizes["lon"]) == (8, 16)
    coarsen(fine, 2).to_netcdf(tmp_path / "coarse_region.nc")
    main(
        _train_command(
            case,
            tmp_path / "aligned",
            *("--steps", "1", "--batch-size", "2"),
            coarse=tmp_path / "coarse_region.nc",
            region=aligned,
        )
    )
    out = tmp_path / "scores.json"
    assert (
        main(
            [
                "downscale",
                "evaluate",
                "--checkpoint",
                str(tmp_path / "aligned"),
                "--name",
                "model",
                "--coarse",
                str(tmp_path / "coarse_region.nc"),
                "--fine",
                str(case / "fine.nc"),
                "--corner-aligned-baselines",
                "--out",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    scores = json.loads(out.read_text())
    assert scores["command"].startswith("stmodel downscale evaluate")
    row = scores["rmse_unweighted"]["temperature_850"]
    assert {"bicubic_corner_aligned", "bilinear_mean_residual_corner_aligned"} <= set(row)
    test = fine.sel(time="2001-01-06")["temperature"].sel(level=850).values  # [time, lat, lon]
    coarse = coarsen(fine, 2).sel(time=fine.sel(time="2001-01-06")["time"])
    zoomed = scipy.ndimage.zoom(
        coarse["temperature"].sel(level=850).values.astype(np.float64),
        (1, 2, 2),
        order=3,
        mode="nearest",
    )
    np.testing.assert_allclose(
        row["bicubic_corner_aligned"], np.sqrt(((zoomed - test) ** 2).mean()), rtol=1e-4
    )
    # The global coarse file holds cells outside the region: refused, with what to do.
    capsys.readouterr()
    assert (
        main(
            [
                "downscale",
                "evaluate",
                "--checkpoint",
                str(case / "finetuned"),
                "--coarse",
                str(case / "coarse.nc"),
                "--fine",
                str(case / "fine.nc"),
                "--corner-aligned-baselines",
                "--quiet",
            ]
        )
        == 2
    )
    assert "coarsen --region" in capsys.readouterr().err


def test_lora_trains_adapters_and_leaves_the_backbone(case, tmp_path):
    main(
        _train_command(
            case,
            tmp_path / "lora",
            *("--steps", "2", "--batch-size", "2", "--mode", "lora", "--lora-rank", "2"),
            *("--warmup-steps", "0", "--learning-rate", "1e-2"),
        )
    )
    tuned = DownscalingCheckpoint.load(tmp_path / "lora")
    pretrained = CheckpointModel.load(case / "pretrained")
    theirs = dict(zip(parameter_names(pretrained.params), jax.tree.leaves(pretrained.params)))
    mine = dict(zip(parameter_names(tuned.params), jax.tree.leaves(tuned.params)))
    base = "network.backbone.encoder_fine.blocks.0.attention.qkv"
    np.testing.assert_array_equal(mine[f"{base}.base.kernel.value"], theirs[f"{base}.kernel.value"])
    assert np.any(np.asarray(mine[f"{base}.lora_b.value"]) != 0)
    assert np.any(np.asarray(mine["network.head.upper.kernel.value"]) != 0)


def _three_step_run(case, workdir, checkpoint_every: int) -> tuple:
    """train_downscaler's arguments for the `case` fixture's fine-tuning (3 steps)."""
    config = DownscaleConfig(
        steps=3,
        batch_size=2,
        checkpoint_every=checkpoint_every,
        optimizer=OptimizerConfig(learning_rate=1e-3, warmup_steps=20),
    )
    data = ([case / "coarse.nc"], [case / "fine.nc"])
    return (config, case / "pretrained", *data, RegionBox.parse(REGION), workdir)


def test_interrupted_run_resumes_exactly(case, tmp_path):
    """Stopped after 2 of 3 steps and run again: the same parameters as the uninterrupted run
    (the `case` fixture, made with the same settings through the command line)."""
    arguments = _three_step_run(case, tmp_path / "resumed", checkpoint_every=2)
    config = arguments[0]
    first = train_downscaler(*arguments, progress=False, stop_after=2)
    assert first["final_step"] == 2
    # How often a run saves may change on resume; it does not change the result.
    second = train_downscaler(
        dataclasses.replace(config, checkpoint_every=1), *arguments[1:], progress=False
    )
    assert second["final_step"] == 3 and second["start_step"] == 2
    uninterrupted = json.loads((case / "finetuned" / "summary.json").read_text())
    assert second["parameter_checksum"] == uninterrupted["parameter_checksum"]
    lines = (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2, 3]


def test_a_stop_signal_saves_then_interrupts_and_the_rerun_resumes_exactly(
    case, tmp_path, monkeypatch
):
    arguments = _three_step_run(case, tmp_path / "stopped", checkpoint_every=100)
    original_append = metrics_log.append

    def append_then_signal(path, record):
        original_append(path, record)
        if record["step"] == 1:
            os.kill(os.getpid(), signal.SIGTERM)  # a scheduler preempting the job

    monkeypatch.setattr(metrics_log, "append", append_then_signal)
    with pytest.raises(Interrupted, match="stopped at step 1") as stopped:
        train_downscaler(*arguments, progress=False)
    assert stopped.value.signum == signal.SIGTERM
    monkeypatch.setattr(metrics_log, "append", original_append)
    resumed = train_downscaler(*arguments, progress=False)
    assert resumed["start_step"] == 1 and resumed["final_step"] == 3
    uninterrupted = json.loads((case / "finetuned" / "summary.json").read_text())
    assert resumed["parameter_checksum"] == uninterrupted["parameter_checksum"]


def test_a_sharded_fine_tune_equals_the_one_device_run(case, tmp_path):
    """`downscale train --mesh 2x1` on 2 fake CPU devices, with the EMA and nan_policy of the
    shared training loop set as key=value overrides: the losses of the one-device run (the
    `case` fixture) to float32 rounding of the sharded sums, and an EMA that inference loads."""
    workdir = tmp_path / "sharded"
    command = [
        sys.executable,
        "-m",
        "stmodel",
        *_train_command(case, workdir, *THREE_STEPS, "--mesh", "2x1"),
        "optimizer.ema_decay=0.5",
        "nan_policy=skip",
    ]
    env = dict(
        os.environ,
        PYTHONPATH=str(REPO),
        JAX_PLATFORMS="cpu",
        XLA_FLAGS="--xla_force_host_platform_device_count=2",
    )
    result = subprocess.run(command, env=env, capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]

    def losses(run):
        lines = (run / "metrics.jsonl").read_text().splitlines()
        return [json.loads(line)["loss"] for line in lines]

    np.testing.assert_allclose(losses(workdir), losses(case / "finetuned"), rtol=1e-4)
    loaded = DownscalingCheckpoint.load(workdir)
    assert loaded.config.optimizer.ema_decay == 0.5 and loaded.config.nan_policy == "skip"
    store = CheckpointStore(workdir / "checkpoints", read_only=True)
    assert store.read_meta()["has_ema"]
    store.close()
    summary = json.loads((workdir / "summary.json").read_text())
    assert parameter_checksum(loaded.params) != summary["parameter_checksum"]  # the EMA
