"""Wrappers around the one-step network: normalisation and the residual formulation.

The raw network (:class:`~stmodel.model.earth_transformer.EarthSpecificTransformer`)
maps normalised inputs to normalised outputs. :class:`NormalisedResidualModel`
turns it into a model of the physical state, as in GraphCast: inputs are
standardised by their per-level mean and std, the network's output is read as
the normalised residual ``(next - current) / diff_std``, and the next state is
returned in physical units. The training loss belongs in the normalised-residual
space: compare :meth:`NormalisedResidualModel.predict_residual` with
:meth:`NormalisedResidualModel.residual_targets`.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from flax import nnx

from stmodel.data.layout import NormalisationStats


class NormalisationStatistic(nnx.Variable):
    """A fixed statistic of the training data: saved with the model, never trained."""


def _checked_statistic(
    stats: NormalisationStats, name: str, shape: tuple[int, ...], positive: bool
) -> NormalisationStatistic:
    value = np.asarray(getattr(stats, name), dtype=np.float32)
    if value.shape != shape:
        raise ValueError(
            f"NormalisationStats.{name} has shape {value.shape}, expected {shape} "
            f"for this model's config"
        )
    bad = ~np.isfinite(value) | ((value <= 0) if positive else False)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        requirement = "finite and > 0" if positive else "finite"
        raise ValueError(
            f"NormalisationStats.{name}{list(where)} = {value[where]}: every entry must "
            f"be {requirement} (a constant field has no std to divide by)"
        )
    return NormalisationStatistic(jnp.asarray(value))


def standardise_constants(constants: jnp.ndarray) -> jnp.ndarray:
    """Constant fields [lat, lon, constant] to zero mean and unit std per field, over the grid.

    A field with no spatial variation (e.g. an all-ocean land-sea mask) is only centred.
    Constants are the same for every sample, so their statistics over the grid are fixed
    for a given dataset and need no separate storage.
    """
    constants = constants.astype(jnp.float32)
    mean = constants.mean(axis=(0, 1))
    std = constants.std(axis=(0, 1))
    return (constants - mean) / jnp.where(std > 0, std, 1.0)


class NormalisedResidualModel(nnx.Module):
    """The next state in physical units from the current one:
    x(t + dt) = x(t) + diff_std * net(x_norm).

    network: any module with the EarthSpecificTransformer call signature and a ``config``.
    stats: per-channel statistics in physical units (see stmodel.data.layout).
    """

    def __init__(self, network: nnx.Module, stats: NormalisationStats):
        self.network = network
        config = network.config
        upper_shape = (config.n_levels, config.n_upper_vars)
        surface_shape = (config.n_surface_vars,)
        self.upper_mean = _checked_statistic(stats, "upper_mean", upper_shape, positive=False)
        self.upper_std = _checked_statistic(stats, "upper_std", upper_shape, positive=True)
        self.upper_diff_std = _checked_statistic(
            stats, "upper_diff_std", upper_shape, positive=True
        )
        self.surface_mean = _checked_statistic(stats, "surface_mean", surface_shape, positive=False)
        self.surface_std = _checked_statistic(stats, "surface_std", surface_shape, positive=True)
        self.surface_diff_std = _checked_statistic(
            stats, "surface_diff_std", surface_shape, positive=True
        )

    # Statistics broadcast as [level, 1, 1, upper_var] against [batch, level, lat, lon, upper_var]
    # and as [surface_var] against [batch, lat, lon, surface_var].
    def _upper(self, statistic: NormalisationStatistic) -> jnp.ndarray:
        return statistic[...][:, None, None, :]

    def normalise_inputs(
        self, upper: jnp.ndarray, surface: jnp.ndarray, constants: jnp.ndarray
    ) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
        upper = (upper.astype(jnp.float32) - self._upper(self.upper_mean)) / self._upper(
            self.upper_std
        )
        surface = (surface.astype(jnp.float32) - self.surface_mean[...]) / self.surface_std[...]
        return upper, surface, standardise_constants(constants)

    def predict_residual(
        self,
        upper: jnp.ndarray,
        surface: jnp.ndarray,
        constants: jnp.ndarray,
        *,
        deterministic: bool = True,
    ) -> tuple[jnp.ndarray, jnp.ndarray]:
        """The network's prediction of (next - current) / diff_std, float32."""
        return self.network(
            *self.normalise_inputs(upper, surface, constants), deterministic=deterministic
        )

    def residual_targets(
        self,
        upper: jnp.ndarray,
        surface: jnp.ndarray,
        next_upper: jnp.ndarray,
        next_surface: jnp.ndarray,
    ) -> tuple[jnp.ndarray, jnp.ndarray]:
        """The training targets (next - current) / diff_std, in physical-unit inputs, float32."""
        return (
            (next_upper.astype(jnp.float32) - upper) / self._upper(self.upper_diff_std),
            (next_surface.astype(jnp.float32) - surface) / self.surface_diff_std[...],
        )

    def apply_residual(
        self,
        upper: jnp.ndarray,
        surface: jnp.ndarray,
        residual_upper: jnp.ndarray,
        residual_surface: jnp.ndarray,
    ) -> tuple[jnp.ndarray, jnp.ndarray]:
        """The next state in physical units from the current one and a normalised residual."""
        return (
            upper.astype(jnp.float32) + residual_upper * self._upper(self.upper_diff_std),
            surface.astype(jnp.float32) + residual_surface * self.surface_diff_std[...],
        )

    def __call__(
        self,
        upper: jnp.ndarray,
        surface: jnp.ndarray,
        constants: jnp.ndarray,
        *,
        deterministic: bool = True,
    ) -> tuple[jnp.ndarray, jnp.ndarray]:
        """One step: physical (upper, surface) at t -> physical (upper, surface) at t + dt."""
        residual = self.predict_residual(upper, surface, constants, deterministic=deterministic)
        return self.apply_residual(upper, surface, *residual)
