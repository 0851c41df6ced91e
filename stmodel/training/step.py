"""The jitted training and evaluation steps, as pure functions of array pytrees.

Parameters live outside the network (nnx.split) so that jax.jit sees plain
pytrees it can shard: the batch along (data, fsdp), parameters and optimiser
state along fsdp.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from stmodel.data.layout import Batch
from stmodel.training.loss import weighted_mae


class TrainState(NamedTuple):
    params: Any         # nnx.State of nnx.Param, float32
    opt_state: Any
    ema_params: Any     # same structure as params, or None


@dataclasses.dataclass(frozen=True)
class StepSettings:
    rollout_steps: int
    surface_weight: float
    ema_decay: float
    skip_non_finite: bool


def rollout(advance, params, batch: Batch, n_steps: int, key, deterministic: bool):
    """Predicted states for t + dt .. t + n dt: upper [batch, step, level, lat, lon, var]."""
    upper, surface = batch.inputs_upper, batch.inputs_surface
    uppers, surfaces = [], []
    for k in range(n_steps):
        upper, surface = advance(params, upper, surface, batch.constants,
                                 jax.random.fold_in(key, k), deterministic)
        uppers.append(upper)
        surfaces.append(surface)
    return jnp.stack(uppers, axis=1), jnp.stack(surfaces, axis=1)


def make_train_step(advance, tx: optax.GradientTransformation, loss_arrays: dict,
                    settings: StepSettings):
    """advance(params, upper, surface, constants, key, deterministic) -> next (physical).

    loss_arrays: upper_scale [level, var], surface_scale [var], lat_weights [lat],
    upper_weights [level, var], surface_weights [var].
    """

    def loss_fn(params, batch: Batch, key):
        upper, surface = rollout(advance, params, batch, settings.rollout_steps, key,
                                 deterministic=False)
        return weighted_mae(upper - batch.targets_upper, surface - batch.targets_surface,
                            surface_weight=settings.surface_weight, **loss_arrays)

    def train_step(state: TrainState, batch: Batch, key):
        loss, grads = jax.value_and_grad(loss_fn)(state.params, batch, key)
        grad_norm = optax.tree.norm(grads)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        ema = state.ema_params
        if ema is not None:
            ema = jax.tree.map(lambda e, p: settings.ema_decay * e + (1 - settings.ema_decay) * p,
                               ema, params)
        new_state = TrainState(params, opt_state, ema)
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        if settings.skip_non_finite:
            # A bad step changes nothing; the loop counts it.
            new_state = jax.tree.map(lambda new, old: jnp.where(finite, new, old), new_state, state)
        return new_state, {"loss": loss, "grad_norm": grad_norm, "finite": finite}

    return train_step


def make_eval_step(advance, loss_arrays: dict, settings: StepSettings):
    """Loss and one-step errors (physical units) of a validation batch."""

    def eval_step(params, batch: Batch):
        key = jax.random.key(0)  # unused: deterministic
        upper, surface = rollout(advance, params, batch, settings.rollout_steps, key,
                                 deterministic=True)
        loss = weighted_mae(upper - batch.targets_upper, surface - batch.targets_surface,
                            surface_weight=settings.surface_weight, **loss_arrays)
        return loss, upper[:, 0] - batch.targets_upper[:, 0], \
            surface[:, 0] - batch.targets_surface[:, 0]

    return eval_step


def split_network(network: nnx.Module):
    """(graphdef, params, rest): params are what training changes."""
    return nnx.split(network, nnx.Param, ...)
