"""The training half of `stmodel bench ensemble` (stmodel.benchmarks.ensemble): seconds
per sample of one jitted gradient step of a training method's loss."""

from __future__ import annotations

from collections.abc import Callable

import jax
import numpy as np
import xarray as xr

from stmodel.checkpoints.global_model import CheckpointModel
from stmodel.data.layout import Batch
from stmodel.evaluation.area_weights import area_weights
from stmodel.training.config import LossConfig, MethodConfig, TrainConfig
from stmodel.training.forecasting_task import method_loss_arrays, training_method

NOISE_DIM = 32  # noise values per member and step, as the shipped stochastic models


def train_config(preset: str, method: str, members: int, batch: int) -> TrainConfig:
    """The training config of a method (stmodel.training.methods): MSE for the
    deterministic one; the ensemble CRPS of `members` on a network with NOISE_DIM noise
    values. One rollout step."""
    stochastic = method == "ensemble_crps"
    return TrainConfig(
        model_preset=preset,
        model_overrides=(("noise_dim", NOISE_DIM),) if stochastic else (),
        batch_size=batch,
        loss=LossConfig(kind="mse"),
        method=MethodConfig(kind=method, members=members),
    )


def random_batch(model: CheckpointModel, batch: int, n_steps: int, seed: int = 0) -> Batch:
    """Standard-normal inputs and targets of the task's shapes (physical units)."""
    c, rng = model.model_config, np.random.default_rng(seed)
    upper, surface = (c.n_levels, *c.grid, c.n_upper_vars), (*c.grid, c.n_surface_vars)

    def normal(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    return Batch(
        normal(batch, *upper),
        normal(batch, *surface),
        normal(batch, n_steps, *upper),
        normal(batch, n_steps, *surface),
        np.asarray(model.constants, np.float32),
        np.zeros(batch, np.int64),
    )


def training_step_run(config: TrainConfig, model: CheckpointModel) -> Callable:
    """A call of one jitted value_and_grad of the config's method's loss (as
    ForecastingTask.loss: stochastic depth on, the step's key) on a batch of the config's
    size, with the task's loss arrays; compiled by one untimed call."""
    lat_weights = area_weights(xr.DataArray(model.lat, dims="lat")).values
    arrays = method_loss_arrays(model.norm, lat_weights, model.layout, config.loss)
    method = training_method(config, model.model_config, arrays)

    def loss(params, batch, key):
        return method.loss(model.advance, params, batch, key, deterministic=False)[0]

    step = jax.jit(jax.value_and_grad(loss))
    batch = jax.device_put(random_batch(model, config.batch_size, config.rollout_steps))
    key = jax.random.key(config.seed)
    jax.block_until_ready(step(model.params, batch, key))  # compile
    return lambda: step(model.params, batch, key)
