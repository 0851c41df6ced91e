"""Ensemble training with the almost fair CRPS: M members per sample, one network pass per
member and step, each member with its own noise (AIFS-ENS, Lang et al. 2024; FGN, Alet et
al. 2025).

The members are folded into the batch, sample-major ([batch * member, ...]), so they are
split over the (data, fsdp) mesh with their samples. Each member's noise at rollout step k
is stmodel.model.noise's function of (seed, step, sample, member, k), the sample being its
index in the global batch: it differs across devices and processes, is the same for any
device count, and a resumed run draws what an uninterrupted one drew. (With
fixed_order_gradients the loss sees one gradient shard at a time, and the sample index
is the shard's.)
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from stmodel.data.layout import Batch
from stmodel.model.noise import batch_noise_in_step
from stmodel.training.crps import ensemble_crps_loss


@dataclasses.dataclass(frozen=True)
class EnsembleCrps:
    """loss = the area- and channel-weighted almost fair CRPS (stmodel.training.crps) of M
    members' rollouts of 1..n_steps steps, in the normalised-residual space, weighted as
    the deterministic loss. The rollout is a lax.scan, rematerialised per step when
    `remat_rollout`, so k-step fine-tuning compiles one step."""

    n_steps: int
    members: int
    alpha: float
    noise_dim: int  # ModelConfig.noise_input_dim
    surface_weight: float
    loss_arrays: dict  # the scales and weights of ensemble_crps_loss, jax arrays
    remat_rollout: bool = False

    @classmethod
    def from_config(cls, config, model_config, loss_arrays: dict) -> EnsembleCrps:
        """From a TrainConfig (its method table) and the stochastic network's ModelConfig."""
        return cls(
            n_steps=config.rollout_steps,
            members=config.method.members,
            alpha=config.method.alpha,
            noise_dim=model_config.noise_input_dim,
            surface_weight=config.loss.surface_weight,
            loss_arrays=loss_arrays,
            remat_rollout=config.method.remat_rollout,
        )

    def predict(self, advance, params, batch: Batch, key, deterministic: bool):
        """Members' rollouts: upper [batch, member, step, level, lat, lon, var], surface
        [batch, member, step, lat, lon, var]."""
        n_batch, m = batch.inputs_upper.shape[0], self.members
        samples = jnp.repeat(jnp.arange(n_batch), m)  # [batch * member], sample-major
        members = jnp.tile(jnp.arange(m), n_batch)  # [batch * member]
        upper = jnp.repeat(batch.inputs_upper, m, axis=0)  # [batch * member, level, lat, lon, var]
        surface = jnp.repeat(batch.inputs_surface, m, axis=0)  # [batch * member, lat, lon, var]

        def one_step(state, k):
            noise = batch_noise_in_step(key, samples, members, k, self.noise_dim)
            state = advance(
                params,
                *state,
                batch.constants,
                jax.random.fold_in(key, k),  # stochastic depth's key, as the deterministic one
                deterministic,
                noise=noise,
            )
            return state, state

        if self.remat_rollout:
            one_step = jax.checkpoint(one_step)
        _, (uppers, surfaces) = jax.lax.scan(one_step, (upper, surface), jnp.arange(self.n_steps))

        def by_member(x):  # [step, batch * member, ...] -> [batch, member, step, ...]
            x = x.reshape(self.n_steps, n_batch, m, *x.shape[2:])  # [step, batch, member, ...]
            return jnp.moveaxis(x, 0, 2)

        return by_member(uppers), by_member(surfaces)

    def loss(self, advance, params, batch: Batch, key, deterministic: bool):
        upper, surface = self.predict(advance, params, batch, key, deterministic)
        # The CRPS does not change when members and truth shift together: scored as changes
        # from the initial state, the differences keep float32's precision.
        base_upper = batch.inputs_upper[:, None]  # [batch, step = 1, level, lat, lon, var]
        base_surface = batch.inputs_surface[:, None]  # [batch, step = 1, lat, lon, var]
        loss = ensemble_crps_loss(
            upper - base_upper[:, None],
            surface - base_surface[:, None],
            batch.targets_upper - base_upper,
            batch.targets_surface - base_surface,
            member_axis=1,
            alpha=self.alpha,
            surface_weight=self.surface_weight,
            **self.loss_arrays,
        )
        return loss, (upper, surface)
