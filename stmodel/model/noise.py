"""The noise of a stochastic network (ModelConfig.noise_dim > 0) as a pure function of
global identifiers: which run, training step, sample, ensemble member and rollout step.

    key = fold_in(fold_in(fold_in(fold_in(key(seed), step), sample), member), rollout_step)
    noise = normal(key, [noise_dim])

The identifiers are folded in that order, one at a time (jax.random.fold_in). Nothing
depends on where a sample is computed: a sample's global index (its position in the
epoch's order, not in the local batch) gives it the same vector on any device, any
process, for any batch size or device count, and a resumed run draws exactly the
vectors of an uninterrupted one. Forecasts use the same keys
(stmodel.forecasting.ensemble), with the initial time (minutes since 1970) in the place
of the step, sample 0, and the lead the model step arrives at in that of rollout_step.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def member_key(seed, step, sample, member, rollout_step) -> jax.Array:
    """The typed PRNG key of one (seed, step, sample, member, rollout_step)."""
    return key_in_step(jax.random.fold_in(jax.random.key(seed), step), sample, member, rollout_step)


def key_in_step(step_key: jax.Array, sample, member, rollout_step) -> jax.Array:
    """member_key from the step's key fold_in(key(seed), step): the key the training loop
    hands a task's loss (stmodel.training.loop)."""
    key = step_key
    for identifier in (sample, member, rollout_step):
        key = jax.random.fold_in(key, identifier)
    return key


def member_noise(seed, step, sample, member, rollout_step, noise_dim: int) -> jnp.ndarray:
    """One member's standard normal noise vector [noise_dim], float32.

    The identifiers are whole numbers (Python ints or integer scalars, traced or not)
    below 2**32; noise_dim is ModelConfig.noise_input_dim.
    """
    key = member_key(seed, step, sample, member, rollout_step)
    return jax.random.normal(key, (noise_dim,), jnp.float32)


def batch_noise(seed, step, samples, members, rollout_step, noise_dim: int) -> jnp.ndarray:
    """member_noise for each row of a batch: samples and members [batch] (broadcast
    against each other: e.g. each sample repeated once per member, and the members
    0..M-1 tiled) -> [batch, noise_dim], row b equal to member_noise(seed, step,
    samples[b], members[b], rollout_step, noise_dim) whatever the batch or its sharding.
    """
    step_key = jax.random.fold_in(jax.random.key(seed), step)
    return batch_noise_in_step(step_key, samples, members, rollout_step, noise_dim)


def batch_noise_in_step(step_key: jax.Array, samples, members, rollout_step, noise_dim: int):
    """batch_noise from the step's key (see key_in_step): [batch, noise_dim]."""
    samples, members = jnp.broadcast_arrays(jnp.asarray(samples), jnp.asarray(members))

    def one(sample, member):
        key = key_in_step(step_key, sample, member, rollout_step)
        return jax.random.normal(key, (noise_dim,), jnp.float32)

    noise = jax.vmap(one)(samples.reshape(-1), members.reshape(-1))  # [rows, noise_dim]
    return noise.reshape(*samples.shape, noise_dim)  # [batch, noise_dim]
