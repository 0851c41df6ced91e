"""`stmodel bench memory`: XLA's memory plan of the sharded training step and of one forecast
step, compiled ahead of time for shapes only, on fake CPU devices."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stmodel.model.config import ModelConfig

REPO = Path(__file__).resolve().parent.parent
BYTES = ("per_device_bytes", "argument_bytes", "output_bytes", "temp_bytes")


def _bench_memory(out: Path, *args: str, devices: int = 4) -> dict:
    env = dict(
        os.environ,
        PYTHONPATH=str(REPO),
        JAX_PLATFORMS="cpu",
        XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
    )
    result = subprocess.run(
        [sys.executable, "-m", "stmodel", "bench", "memory", "--quiet", "--out", str(out), *args],
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    written = json.loads(out.read_text())
    assert json.loads(result.stdout) == written
    return written


def test_bench_memory_plans_train_and_forecast_and_remat_saves_temporaries(tmp_path):
    common = ["--preset", "tiny", "--grid", "32", "64", "--mesh", "2x2", "--dtype", "bfloat16"]
    plain = _bench_memory(tmp_path / "plain.json", *common)
    remat = _bench_memory(tmp_path / "remat.json", *common, "--remat", "--train-only")

    train, forecast = plain["train"], plain["forecast"]
    assert train["preset"] == "tiny" and train["grid"] == [32, 64]
    assert train["mesh"] == [2, 2] and train["devices"] == 4 and train["batch"] == 4
    assert train["dtype"] == "bfloat16" and train["remat"] is False
    assert forecast["devices"] == 1 and forecast["batch"] == 1
    assert train["backend"] == forecast["backend"] == "cpu"
    for part in (train, forecast):
        assert all(part[key] > 0 for key in BYTES), part
        assert part["per_device_bytes"] == (
            part["argument_bytes"] + part["output_bytes"] + part["temp_bytes"] - part["alias_bytes"]
        )
        assert part["flops"] > 0 and part["compile_s"] > 0
        assert part["params"] == train["params"] > 0
    # The state is donated: its buffers are reused for the new state.
    assert train["alias_bytes"] > 0
    # fsdp = 2 holds about half of the parameters and optimiser state on each device.
    assert train["argument_bytes"] < train["param_bytes"] + train["optimizer_state_bytes"]
    assert train["flops"] > forecast["flops"]

    assert "forecast" not in remat and remat["train"]["remat"] is True
    assert remat["train"]["temp_bytes"] <= train["temp_bytes"]
    assert remat["train"]["flops"] >= train["flops"]  # recomputing costs FLOPs


def test_bench_memory_refuses_a_folder_and_an_uneven_batch(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu")
    base = [sys.executable, "-m", "stmodel", "bench", "memory", "--preset", "tiny"]
    folder = subprocess.run([*base, "--out", str(tmp_path)], env=env, capture_output=True)
    assert folder.returncode != 0 and b"is a folder" in folder.stderr
    uneven = subprocess.run(
        [*base, "--mesh", "2x1", "--batch", "3", "--out", str(tmp_path / "x.json")],
        env=env,
        capture_output=True,
    )
    assert uneven.returncode != 0 and b"not a multiple" in uneven.stderr
    assert not (tmp_path / "x.json").exists()


def test_remat_policies_give_the_gradients_of_no_remat():
    import jax
    import numpy as np
    from flax import nnx

    from stmodel.benchmarks.model import random_inputs
    from stmodel.model.earth_transformer import EarthSpecificTransformer

    def loss_and_grads(remat):
        config = ModelConfig.preset("tiny", grid=(16, 32), depths=(1, 1, 1, 1), remat=remat)
        model = EarthSpecificTransformer(config, rngs=nnx.Rngs(params=0, dropout=1))
        x = random_inputs(config, batch=1)

        def loss(model):
            upper, surface = model(x["upper"], x["surface"], x["constants"], deterministic=True)
            return (upper**2).mean() + (surface**2).mean()

        return nnx.jit(nnx.value_and_grad(loss))(model)

    plain_loss, plain = loss_and_grads(False)
    for policy in ("dots", "dots_no_batch"):
        remat_loss, remat = loss_and_grads(policy)
        np.testing.assert_allclose(remat_loss, plain_loss, rtol=1e-6)
        for a, b in zip(jax.tree.leaves(plain), jax.tree.leaves(remat)):
            np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-6)


def test_remat_policies_are_validated():
    assert ModelConfig.preset("tiny", remat="dots_no_batch").remat == "dots_no_batch"
    with pytest.raises(ValueError, match="remat"):
        ModelConfig.preset("tiny", remat="everything")
