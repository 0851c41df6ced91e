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
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from stmodel.data.layout import Batch
from stmodel.training.loss import weighted_error


class TrainState(NamedTuple):
    params: Any  # nnx.State of nnx.Param, float32
    opt_state: Any
    ema_params: Any  # same structure as params, or None


@dataclasses.dataclass(frozen=True)
class StepSettings:
    rollout_steps: int
    surface_weight: float
    ema_decay: float
    skip_non_finite: bool
    squared_error: bool = False


def rollout(advance, params, batch: Batch, n_steps: int, key, deterministic: bool):
    """Predicted states for t + dt .. t + n dt: upper [batch, step, level, lat, lon, var]."""
    upper, surface = batch.inputs_upper, batch.inputs_surface
    uppers, surfaces = [], []
    for k in range(n_steps):
        upper, surface = advance(
            params, upper, surface, batch.constants, jax.random.fold_in(key, k), deterministic
        )
        uppers.append(upper)
        surfaces.append(surface)
    return jnp.stack(uppers, axis=1), jnp.stack(surfaces, axis=1)


def fixed_order_value_and_grad(loss_fn, n_shards: int, param_shardings):
    """Loss and gradients of a batch split into n_shards, summed in shard order.

    XLA sums gradients across devices with an all-reduce whose order depends on
    how the devices are spread over processes (gloo across hosts, in-process
    otherwise), so the same devices in another process layout give parameters
    that differ in the last bits. Here each shard's gradient is all-gathered
    (exact) and every device adds them in shard order: bit-identical results for
    any process layout of the same mesh, for n_shards times the gradient memory.
    """
    batched = Batch(0, 0, 0, 0, None, None)  # input_time is each process's own

    def split(x):  # [batch, ...] -> [shard, batch / shard, ...]
        return x.reshape(n_shards, x.shape[0] // n_shards, *x.shape[1:])

    def gathered(x, sharding: NamedSharding):  # [shard, ...] on every device
        return jax.lax.with_sharding_constraint(
            x, NamedSharding(sharding.mesh, P(None, *sharding.spec))
        )

    def value_and_grad(params, batch: Batch, key):
        shards = batch._replace(
            **{
                name: split(getattr(batch, name))
                for name in ("inputs_upper", "inputs_surface", "targets_upper", "targets_surface")
            }
        )
        keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(n_shards))
        losses, grads = jax.vmap(jax.value_and_grad(loss_fn), in_axes=(None, batched, 0))(
            params, shards, keys
        )
        replicated = NamedSharding(jax.tree.leaves(param_shardings)[0].mesh, P())
        losses = jax.lax.with_sharding_constraint(losses, replicated)
        grads = jax.tree.map(gathered, grads, param_shardings)

        def in_order(x):
            total = x[0]
            for i in range(1, n_shards):
                total = total + x[i]
            return total / n_shards

        return in_order(losses), jax.tree.map(in_order, grads)

    return value_and_grad


def make_train_step(
    advance,
    tx: optax.GradientTransformation,
    loss_arrays: dict,
    settings: StepSettings,
    fixed_order: tuple[int, Any] | None = None,
):
    """advance(params, upper, surface, constants, key, deterministic) -> next (physical).

    loss_arrays: upper_scale [level, var], surface_scale [var], lat_weights [lat],
    upper_weights [level, var], surface_weights [var]. fixed_order: (number of
    batch shards, parameter shardings) to sum gradients in a fixed order (see
    fixed_order_value_and_grad); None lets XLA reduce them.
    """

    def loss_fn(params, batch: Batch, key):
        upper, surface = rollout(
            advance, params, batch, settings.rollout_steps, key, deterministic=False
        )
        return weighted_error(
            upper - batch.targets_upper,
            surface - batch.targets_surface,
            surface_weight=settings.surface_weight,
            squared=settings.squared_error,
            **loss_arrays,
        )

    value_and_grad = (
        jax.value_and_grad(loss_fn)
        if fixed_order is None
        else fixed_order_value_and_grad(loss_fn, *fixed_order)
    )

    def train_step(state: TrainState, batch: Batch, key):
        loss, grads = value_and_grad(state.params, batch, key)
        grad_norm = optax.tree.norm(grads)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        ema = state.ema_params
        if ema is not None:
            ema = jax.tree.map(
                lambda e, p: settings.ema_decay * e + (1 - settings.ema_decay) * p, ema, params
            )
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
        upper, surface = rollout(
            advance, params, batch, settings.rollout_steps, key, deterministic=True
        )
        loss = weighted_error(
            upper - batch.targets_upper,
            surface - batch.targets_surface,
            surface_weight=settings.surface_weight,
            squared=settings.squared_error,
            **loss_arrays,
        )
        return (
            loss,
            upper[:, 0] - batch.targets_upper[:, 0],
            surface[:, 0] - batch.targets_surface[:, 0],
        )

    return eval_step


def split_network(network: nnx.Module):
    """(graphdef, params, rest): params are what training changes."""
    return nnx.split(network, nnx.Param, ...)
