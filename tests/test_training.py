"""Training at scale on CPU: sharded == unsharded, multi-host == single host,
kill-and-resume == uninterrupted, NaN handling, restore-and-forecast.

Each run is a fresh `python -m stmodel` process, as a user would start it.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest
import xarray as xr
from data_styles import truth

from stmodel.checkpoints.global_model import CheckpointModel

REPO = Path(__file__).resolve().parent.parent
# A very small network: these tests are about the training machinery.
SMALL = [
    "model_overrides.depths=[1,1,1,1]",
    "model_overrides.dim=16",
    "model_overrides.heads=[1,2,2,1]",
]


def _env(devices: int = 1, **extra) -> dict:
    env = dict(
        os.environ,
        PYTHONPATH=str(REPO),
        JAX_PLATFORMS="cpu",
        XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
    )
    env.update(extra)
    return env


def _stmodel(*args, devices: int = 1, check: bool = True, **popen):
    result = subprocess.run(
        [sys.executable, "-m", "stmodel", *map(str, args)],
        cwd=REPO,
        env=_env(devices),
        capture_output=True,
        text=True,
        **popen,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"stmodel {' '.join(map(str, args))} failed:\n{result.stderr[-3000:]}")
    return result


def _summary(workdir: Path) -> dict:
    return json.loads((workdir / "summary.json").read_text())


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    ds = truth(n_times=48)
    ds.attrs.update(train_period="2001-01-01/2001-01-09", validation_period="2001-01-10/2001-01-12")
    path = tmp_path_factory.mktemp("training") / "tiny.nc"
    ds.to_netcdf(path)
    return path


def _train(data, workdir, *extra, steps=6, devices=1, **kwargs):
    return _stmodel(
        "train",
        "--config",
        "tiny",
        "--data",
        data,
        "--workdir",
        workdir,
        "--steps",
        steps,
        "--quiet",
        "checkpoint_every=2",
        "validate_every=3",
        *SMALL,
        *extra,
        devices=devices,
        **kwargs,
    )


@pytest.fixture(scope="session")
def uninterrupted(tiny_data, tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("training") / "uninterrupted"
    _train(tiny_data, workdir)
    return workdir


def test_sharded_steps_equal_one_device(tiny_data, tmp_path):
    """One step on meshes 8x1 (data parallel) and 2x4 (data and fsdp) of 8 fake CPU devices
    equals one device."""
    script = f"""
import sys, numpy as np
sys.path.insert(0, {str(REPO)!r})
import jax
from stmodel.checkpoints.global_model import CheckpointModel
from stmodel.training.config import load_config
from stmodel.training.forecasting_task import train
config = load_config("tiny", {SMALL!r} + ["batch_size=8", "checkpoint_every=1",
                                          "validate_every=0"])
params = {{}}
for mesh in [(1, 1), (8, 1), (2, 4)]:
    workdir = {str(tmp_path)!r} + f"/mesh{{mesh[0]}}x{{mesh[1]}}"
    result = train(config, [{str(tiny_data)!r}], workdir, steps=1, mesh_shape=mesh, progress=False)
    params[mesh] = (result.metrics["loss"],
                    [np.asarray(x) for x in jax.tree.leaves(CheckpointModel.load(workdir).params)])
loss0, ref = params[(1, 1)]
for mesh, (loss, leaves) in params.items():
    assert abs(loss - loss0) <= 1e-5 * abs(loss0), (mesh, loss, loss0)
    for a, b in zip(leaves, ref):
        # Adam divides each gradient by its own magnitude: where a gradient is near
        # zero, float32 rounding of the sharded sums moves the update by a fraction of
        # the learning rate (1e-3), hence an absolute tolerance of 1% of it.
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5, err_msg=str(mesh))
print("sharded OK", len(ref), "parameter arrays")
"""
    result = subprocess.run(
        [sys.executable, "-c", script], env=_env(8), capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "sharded OK" in result.stdout
    # Trained on 8 devices, forecast on one: the checkpoint loads in this 1-device process.
    assert jax.device_count() == 1
    assert CheckpointModel.load(tmp_path / "mesh2x4").step == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_match_one_process(tiny_data, tmp_path):
    """Two local processes with 2 CPU devices each == one process with 4 devices, bit for bit."""
    common = [
        "--config",
        "tiny",
        "--data",
        tiny_data,
        "--steps",
        3,
        "--quiet",
        "batch_size=4",
        "checkpoint_every=3",
        "validate_every=100",
        "fixed_order_gradients=true",
        *SMALL,
    ]
    single = tmp_path / "single"
    _stmodel("train", *common, "--workdir", single, devices=4)
    port = _free_port()
    multi = tmp_path / "multi"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "stmodel",
                "train",
                *map(str, common),
                "--workdir",
                str(multi),
                "--coordinator",
                f"127.0.0.1:{port}",
                "--num-processes",
                "2",
                "--process-id",
                str(i),
            ],
            cwd=REPO,
            env=_env(2),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outputs = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, outputs):
        assert p.returncode == 0, err[-3000:]
    losses = [
        [json.loads(line)["loss"] for line in (w / "metrics.jsonl").read_text().splitlines()]
        for w in (single, multi)
    ]
    assert losses[0] == losses[1] and len(losses[0]) == 3
    assert _summary(multi)["parameter_checksum"] == _summary(single)["parameter_checksum"]


def test_kill_and_resume_equals_uninterrupted(tiny_data, uninterrupted, tmp_path):
    workdir = tmp_path / "killed"
    args = [
        sys.executable,
        "-m",
        "stmodel",
        "train",
        "--config",
        "tiny",
        "--data",
        str(tiny_data),
        "--workdir",
        str(workdir),
        "--steps",
        "6",
        "--quiet",
        "checkpoint_every=2",
        "validate_every=3",
        *SMALL,
    ]
    proc = subprocess.Popen(
        args, cwd=REPO, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    metrics = workdir / "metrics.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 3:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (workdir / "summary.json").exists(), "the run finished before it was killed"
    _stmodel(*args[3:])
    assert _summary(workdir)["parameter_checksum"] == _summary(uninterrupted)["parameter_checksum"]
    steps = [json.loads(line)["step"] for line in metrics.read_text().splitlines()]
    assert steps == list(range(1, 7)), "metrics.jsonl must hold each step once"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_saves_then_exits_with_128_plus_the_signal(tiny_data, tmp_path, signum):
    workdir = tmp_path / "preempted"
    args = [
        sys.executable,
        "-m",
        "stmodel",
        "train",
        "--config",
        "tiny",
        "--data",
        str(tiny_data),
        "--workdir",
        str(workdir),
        "--steps",
        "200",
        "--quiet",
        "checkpoint_every=1000",
        "validate_every=1000",
        *SMALL,
    ]
    proc = subprocess.Popen(
        args, cwd=REPO, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    metrics = workdir / "metrics.jsonl"
    while proc.poll() is None and not (metrics.exists() and metrics.read_text().count("\n") >= 2):
        time.sleep(0.05)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 128 + signum, err[-2000:]
    assert "Traceback" not in err
    info = json.loads(_stmodel("checkpoint", "info", workdir, "--json").stdout)
    assert 2 <= info["step"] < 200 and info["step"] == _summary(workdir)["final_step"]


def test_nan_loss_stops_with_clear_message_and_keeps_last_good_checkpoint(tiny_data, tmp_path):
    workdir = tmp_path / "nan"
    # The learning rate warms up from 0, so step 1 is good (and saved) and step 2 blows up.
    result = _train(
        tiny_data,
        workdir,
        "optimizer.learning_rate=1e30",
        "optimizer.warmup_steps=3",
        "optimizer.grad_clip_norm=1e30",
        "checkpoint_every=1",
        check=False,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert "NaN/Inf" in result.stderr and "last good checkpoint is step" in result.stderr
    info = json.loads(_stmodel("checkpoint", "info", workdir, "--json").stdout)
    assert info["step"] >= 1
    skipped = tmp_path / "nan-skip"
    _train(
        tiny_data,
        skipped,
        "optimizer.learning_rate=1e30",
        "optimizer.warmup_steps=0",
        "optimizer.grad_clip_norm=1e30",
        "nan_policy=skip",
    )
    assert _summary(skipped)["skipped_steps"] >= 1


def test_checkpoint_restores_in_fresh_process_and_forecasts(tiny_data, uninterrupted, tmp_path):
    info = json.loads(_stmodel("checkpoint", "info", uninterrupted, "--json").stdout)
    assert info["step"] == 6
    assert info["parameter_checksum"] == _summary(uninterrupted)["parameter_checksum"]
    out = tmp_path / "forecast.nc"
    _stmodel(
        "forecast",
        "--checkpoint",
        uninterrupted,
        "--data",
        tiny_data,
        "--init",
        "2001-01-10T00",
        "2001-01-10T12",
        "--lead",
        "24h",
        "--out",
        out,
        "--quiet",
    )
    forecast = xr.open_dataset(out)
    assert forecast["temperature"].dims == (
        "time",
        "prediction_timedelta",
        "level",
        "latitude",
        "longitude",
    )
    assert forecast.sizes["prediction_timedelta"] == 4 and forecast.sizes["time"] == 2
    assert np.isfinite(forecast["temperature"]).all()
    assert "checkpoints" in forecast.attrs and forecast.attrs["model_name"] == "stmodel-6h"


def test_weight_ema_trains_and_is_what_inference_loads(tiny_data, tmp_path):
    workdir = tmp_path / "ema"
    _train(tiny_data, workdir, "optimizer.ema_decay=0.5", steps=3)
    ema, raw = CheckpointModel.load(workdir), CheckpointModel.load(workdir, use_ema=False)
    differ = [
        not np.array_equal(a, b)
        for a, b in zip(jax.tree.leaves(ema.params), jax.tree.leaves(raw.params))
    ]
    assert any(differ)


def test_resuming_with_other_settings_is_refused_in_one_line(tiny_data, uninterrupted, tmp_path):
    workdir = tmp_path / "copy"
    shutil.copytree(uninterrupted, workdir)
    # Another network: its arrays would not fit the saved tree; the settings are compared first.
    result = _train(tiny_data, workdir, "model_overrides.dim=32", check=False)
    assert result.returncode == 2, result.stderr[-2000:]
    message = result.stderr.strip().splitlines()[-1]
    assert "Traceback" not in result.stderr and "different settings (model_overrides)" in message


def test_overrides_may_follow_options(tiny_data, tmp_path):
    workdir = tmp_path / "mixed"
    args = ["train", "--config", "tiny", "--data", tiny_data, "--workdir", workdir]
    _stmodel(*args, "validate_every=0", "--steps", "1", "--quiet", *SMALL, "checkpoint_every=1")
    assert _summary(workdir)["final_step"] == 1


def _damage(step_dir: Path, how: str) -> None:
    files = sorted((p for p in step_dir.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    if how == "flip":  # bytes changed in the parameters' largest file: only the checksum can tell
        files = [p for p in files if p.relative_to(step_dir).parts[0] == "params"]
        data = bytearray(files[-1].read_bytes())
        middle = len(data) // 2
        data[middle : middle + 64] = bytes(255 - b for b in data[middle : middle + 64])
        files[-1].write_bytes(bytes(data))
    else:  # the files of one item missing, as after a copy cut short
        for path in files:
            if path.relative_to(step_dir).parts[0] == how:
                path.unlink()


@pytest.mark.parametrize("how", ["flip", "meta"])
def test_a_damaged_newest_checkpoint_falls_back_to_the_newest_good_one(
    tiny_data, uninterrupted, tmp_path, how
):
    workdir = tmp_path / "damaged"
    shutil.copytree(uninterrupted, workdir)
    (workdir / "summary.json").unlink()
    _damage(workdir / "checkpoints" / "6", how)
    info = _stmodel("checkpoint", "info", workdir, "--json")
    assert json.loads(info.stdout)["step"] == 4
    warning = [line for line in info.stderr.splitlines() if "damaged" in line]
    assert len(warning) == 1 and "checkpoints/6 is damaged" in warning[0], info.stderr
    assert "Traceback" not in info.stderr
    # Resuming starts from step 4, sets step 6 aside, and ends bit-identical.
    _train(tiny_data, workdir)
    assert (workdir / "checkpoints" / "damaged-6").is_dir()
    assert _summary(workdir)["parameter_checksum"] == _summary(uninterrupted)["parameter_checksum"]


def test_a_damaged_step_asked_for_by_number_is_an_error_in_one_line(uninterrupted, tmp_path):
    workdir = tmp_path / "damaged"
    shutil.copytree(uninterrupted, workdir)
    _damage(workdir / "checkpoints" / "4", "flip")
    result = _stmodel("checkpoint", "info", workdir, "--step", "4", check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "checkpoints/4: damaged checkpoint" in result.stderr.strip().splitlines()[-1]


@pytest.mark.slow
def test_random_sigkills_then_resume_equal_an_uninterrupted_run(tiny_data, tmp_path):
    from eval.kill_resume import kill_and_resume

    result = kill_and_resume(tiny_data, tmp_path, kills=3, steps=10, seed=1)
    assert result["bit_identical"], result
    assert result["kills"] == 3 and result["kills_during_a_checkpoint_write"] >= 1, result
    assert result["leftover_temporary_files"] == [], result


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _train_here(data, workdir, *extra, steps=6) -> int:
    """The CLI in this process: these runs stop before training, so no new process pays
    for importing JAX."""
    from stmodel.cli import main

    argv = ["train", "--config", "tiny", "--data", str(data), "--workdir", str(workdir)]
    argv += ["--steps", str(steps), "--quiet", "checkpoint_every=2", "validate_every=3", *SMALL]
    return main([*argv, *extra])


def test_resuming_with_data_of_other_variables_is_refused_and_changes_nothing(
    tiny_data, uninterrupted, tmp_path, capsys
):
    workdir = tmp_path / "copy"
    shutil.copytree(uninterrupted, workdir)
    before = _files(workdir)
    other = tmp_path / "other.nc"
    ds = xr.load_dataset(tiny_data).drop_vars("2m_temperature")
    ds.to_netcdf(other)
    assert _train_here(other, workdir) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "holds a run on data of other variables" in error, error
    assert "surface variables: the workdir's" in error and "2m_temperature" in error
    assert "damaged" not in error
    assert _files(workdir) == before  # stats, climatology, checkpoints, summary: as they were
    # The same data copied elsewhere (another path and time of change): the run resumes
    # with its own statistics, which are not recomputed.
    copied = tmp_path / "copied.nc"
    shutil.copy(tiny_data, copied)
    assert _train_here(copied, workdir) == 0
    assert _files(workdir) == before


def test_fewer_steps_than_the_workdir_has_are_refused_and_the_summary_is_kept(
    tiny_data, uninterrupted, tmp_path, capsys
):
    workdir = tmp_path / "copy"
    shutil.copytree(uninterrupted, workdir)
    summary = (workdir / "summary.json").read_text()
    assert "validation_loss" in summary
    assert _train_here(tiny_data, workdir, steps=4) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "at step 6, past the 4 steps asked for" in error, error
    # As many steps as it has: nothing to do, and the summary of the run stays whole.
    assert _train_here(tiny_data, workdir, steps=6) == 0
    assert (workdir / "summary.json").read_text() == summary


def test_a_second_run_on_a_workdir_stops_naming_the_process_that_holds_it(
    tiny_data, tmp_path, capsys
):
    from stmodel.training.workdir_lock import hold_workdir

    workdir = tmp_path / "busy"
    workdir.mkdir()
    with hold_workdir(workdir):
        assert _train_here(tiny_data, workdir, steps=1) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and f"process {os.getpid()} on {socket.gethostname()}" in error
    assert "another run is using this workdir" in error
    assert list(workdir.iterdir()) == []  # nothing written, the lock file gone with its run


def test_the_lock_of_a_process_that_died_is_taken_over(tmp_path):
    from stmodel.training.workdir_lock import LOCK_FILE, hold_workdir

    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    )
    dead = int(child.stdout)
    lock = tmp_path / LOCK_FILE
    lock.write_text(json.dumps({"pid": dead, "host": socket.gethostname()}))
    with hold_workdir(tmp_path):
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert not lock.exists()


# Ensemble CRPS training (stmodel.training.methods.ensemble): a stochastic tiny network.
ENSEMBLE = ["model_overrides.noise_dim=4", "method.kind=ensemble_crps", "method.members=2"]


@pytest.fixture(scope="module")
def ensemble_run(tiny_data, tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("training") / "ensemble"
    assert _train_here(tiny_data, workdir, *ENSEMBLE, steps=4) == 0
    return workdir


def test_ensemble_training_reports_the_crps_and_spread_skill_ratios(ensemble_run):
    summary = _summary(ensemble_run)
    assert summary["final_step"] == 4
    assert np.isfinite(summary["val_crps"]) and summary["val_crps"] == summary["validation_loss"]
    ratios = {k: v for k, v in summary.items() if k.startswith("val_ssr_")}
    assert "val_ssr_geopotential_500" in ratios, sorted(summary)
    assert all(np.isfinite(v) and v > 0 for v in ratios.values()), ratios
    spreads = {k: v for k, v in summary.items() if k.startswith("val_spread_")}
    assert spreads.keys() == {k.replace("ssr", "spread") for k in ratios}
    assert all(np.isfinite(v) and v > 0 for v in spreads.values()), spreads
    saved = CheckpointModel.load(ensemble_run)
    assert saved.model_config.noise_dim == 4
    assert saved.train_config["method"]["kind"] == "ensemble_crps"


def test_ensemble_training_stopped_then_resumed_is_bit_for_bit_the_uninterrupted_run(
    tiny_data, ensemble_run, tmp_path, monkeypatch
):
    """SIGTERM after step 2 (the run saves and stops), then the same command resumes."""
    from stmodel.training import loop

    append = loop.metrics_log.append

    def stop_after_step_2(path, record):
        append(path, record)
        if record["step"] == 2:
            os.kill(os.getpid(), signal.SIGTERM)

    workdir = tmp_path / "resumed"
    monkeypatch.setattr(loop.metrics_log, "append", stop_after_step_2)
    assert _train_here(tiny_data, workdir, *ENSEMBLE, steps=4) == 128 + signal.SIGTERM
    monkeypatch.setattr(loop.metrics_log, "append", append)
    assert CheckpointModel.load(workdir).step == 2
    assert _train_here(tiny_data, workdir, *ENSEMBLE, steps=4) == 0
    assert _summary(workdir)["parameter_checksum"] == _summary(ensemble_run)["parameter_checksum"]


def test_ensemble_members_sharded_over_devices_equal_one_device(tiny_data, tmp_path):
    """The members of each sample are folded into the batch and split over the devices with
    it; each draws its own noise from its global sample index, so two devices compute the
    one-device loss and update (noise replicated per device would not).

    Both start from a short run's parameters: from the zero-initialised noise modulations
    the members are equal up to rounding, the CRPS's |member - member| has no defined
    gradient sign, and Adam's first step turns that rounding (which differs with the device
    layout and the CPU) into +-learning rate."""
    script = f"""
import sys, numpy as np
sys.path.insert(0, {str(REPO)!r})
import jax
from stmodel.checkpoints.global_model import CheckpointModel
from stmodel.training.config import load_config
from stmodel.training.forecasting_task import train
settings = {SMALL + ENSEMBLE!r} + ["batch_size=2", "checkpoint_every=1", "validate_every=0"]
start = {str(tmp_path)!r} + "/start"
train(load_config("tiny", settings), [{str(tiny_data)!r}], start, steps=3, progress=False)
config = load_config("tiny", settings + ["warm_start=" + start, "seed=1"])
runs = {{}}
for mesh in [(1, 1), (2, 1)]:
    workdir = {str(tmp_path)!r} + f"/mesh{{mesh[0]}}x{{mesh[1]}}"
    result = train(config, [{str(tiny_data)!r}], workdir, steps=1, mesh_shape=mesh, progress=False)
    runs[mesh] = (result.metrics["loss"],
                  [np.asarray(x) for x in jax.tree.leaves(CheckpointModel.load(workdir).params)])
(loss0, ref), (loss, leaves) = runs[(1, 1)], runs[(2, 1)]
assert abs(loss - loss0) <= 1e-5 * abs(loss0), (loss, loss0)
a = np.concatenate([x.ravel() for x in leaves])
b = np.concatenate([x.ravel() for x in ref])
# Adam's first step moves a parameter by about the learning rate (1e-3) times the sign of
# its gradient: within 10% of it, but for the rare gradient near zero, whose sign float32
# rounding sets (at most a flip, 2 x the learning rate, for 1% of the parameters).
close = np.isclose(a, b, rtol=1e-4, atol=1e-4)
assert close.mean() >= 0.99 and np.abs(a - b).max() <= 2.5e-3, (close.mean(), abs(a - b).max())
print("ensemble sharded OK")
"""
    result = subprocess.run(
        [sys.executable, "-c", script], env=_env(2), capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ensemble sharded OK" in result.stdout
