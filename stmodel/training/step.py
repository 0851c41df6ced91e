"""The jitted training step of any task, as a pure function of array pytrees.

Parameters live outside the network (nnx.split) so that jax.jit sees plain
pytrees it can shard: the batch along (data, fsdp), parameters and optimiser
state along fsdp. A task supplies loss(params, batch, key) and which batch
fields are per sample (split over devices) and which are shared.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P


class TrainState(NamedTuple):
    params: Any  # nnx.State of nnx.Param, float32
    opt_state: Any
    ema_params: Any  # same structure as params, or None


def _is_none(x) -> bool:
    return x is None


def fixed_order_value_and_grad(loss_fn, batch_axes, n_shards: int, param_shardings):
    """Loss and gradients of a batch split into n_shards, summed in shard order.

    XLA sums gradients across devices with an all-reduce whose order depends on
    how the devices are spread over processes (gloo across hosts, in-process
    otherwise), so the same devices in another process layout give parameters
    that differ in the last bits. Here each shard's gradient is all-gathered
    (exact) and every device adds them in shard order: bit-identical results for
    any process layout of the same mesh, for n_shards times the gradient memory.
    batch_axes: per batch field, 0 (per sample) or None (shared by every sample).
    """

    def split(axis, x):  # [batch, ...] -> [shard, batch / shard, ...]
        return x if axis is None else x.reshape(n_shards, x.shape[0] // n_shards, *x.shape[1:])

    def gathered(x, sharding: NamedSharding):  # [shard, ...] on every device
        return jax.lax.with_sharding_constraint(
            x, NamedSharding(sharding.mesh, P(None, *sharding.spec))
        )

    def value_and_grad(params, batch, key):
        shards = jax.tree.map(split, batch_axes, batch, is_leaf=_is_none)
        keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(n_shards))
        losses, grads = jax.vmap(jax.value_and_grad(loss_fn), in_axes=(None, batch_axes, 0))(
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
    loss_fn,
    tx: optax.GradientTransformation,
    ema_decay: float = 0.0,
    fixed_order: tuple[Any, int, Any] | None = None,
):
    """loss_fn(params, batch, key) -> scalar. fixed_order: (batch axes, number of batch
    shards, parameter shardings) to sum gradients in a fixed order (see
    fixed_order_value_and_grad); None lets XLA reduce them.

    A step whose loss or gradients are not finite leaves the EMA alone; the optimiser
    decides about the parameters (optax.apply_if_finite skips such updates).
    """
    value_and_grad = (
        jax.value_and_grad(loss_fn)
        if fixed_order is None
        else fixed_order_value_and_grad(loss_fn, *fixed_order)
    )

    def train_step(state: TrainState, batch, key):
        loss, grads = value_and_grad(state.params, batch, key)
        grad_norm = optax.tree.norm(grads)
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        ema = state.ema_params
        if ema is not None:
            ema = jax.tree.map(
                lambda e, p: jnp.where(finite, ema_decay * e + (1 - ema_decay) * p, e), ema, params
            )
        new_state = TrainState(params, opt_state, ema)
        return new_state, {"loss": loss, "grad_norm": grad_norm, "finite": finite}

    return train_step
