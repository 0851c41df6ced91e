"""Deterministic training: one forecast per sample, the weighted MAE or MSE of its
rollout against the truth (Pangu, GraphCast)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from stmodel.data.layout import Batch
from stmodel.training.loss import weighted_error


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


@dataclasses.dataclass(frozen=True)
class Deterministic:
    """loss = weighted |error| or error² of 1..n_steps autoregressive steps, in the
    normalised-residual space (stmodel.training.loss.weighted_error)."""

    n_steps: int
    squared: bool
    surface_weight: float
    loss_arrays: dict  # weighted_error's scales and weights, jax arrays
    members = 1  # forecasts per sample

    @classmethod
    def from_config(cls, config, model_config, loss_arrays: dict) -> Deterministic:
        """From a TrainConfig (its rollout_steps and loss table), as METHODS builds it."""
        return cls(
            n_steps=config.rollout_steps,
            squared=config.loss.kind == "mse",
            surface_weight=config.loss.surface_weight,
            loss_arrays=loss_arrays,
        )

    def loss(self, advance, params, batch: Batch, key, deterministic: bool):
        upper, surface = rollout(advance, params, batch, self.n_steps, key, deterministic)
        loss = weighted_error(
            upper - batch.targets_upper,
            surface - batch.targets_surface,
            surface_weight=self.surface_weight,
            squared=self.squared,
            **self.loss_arrays,
        )
        return loss, (upper[:, None], surface[:, None])  # [batch, member, step, ...]
