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


def checked_statistic(
    value, name: str, shape: tuple[int, ...], positive: bool
) -> NormalisationStatistic:
    """`value` as a statistic, or ValueError naming `name` if its shape or values are wrong."""
    value = np.asarray(value, dtype=np.float32)
    if value.shape != shape:
        raise ValueError(
            f"{name} has shape {value.shape}, expected {shape} for this model's config"
        )
    bad = ~np.isfinite(value) | ((value <= 0) if positive else False)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        requirement = "finite and > 0" if positive else "finite"
        raise ValueError(
            f"{name}{list(where)} = {value[where]}: every entry must "
            f"be {requirement} (a constant field has no std to divide by)"
        )
    return NormalisationStatistic(jnp.asarray(value))


# Statistics broadcast as [level, 1, 1, upper_var] against [batch, level, lat, lon, upper_var]
# and as [surface_var] against [batch, lat, lon, surface_var].
def _upper(statistic: NormalisationStatistic) -> jnp.ndarray:
    return statistic[...][:, None, None, :]


class ResidualScaling(nnx.Module):
    """The normalise/residual wrapper every model shares: inputs standardised by a mean and
    std per channel; the network's output read as (physical - base) / residual scale, where
    the base is the current state (forecasting) or the interpolated coarse field
    (downscaling). Statistics are per [level, upper_var] and per [surface_var]."""

    def __init__(
        self,
        upper_mean,
        upper_std,
        upper_scale,
        surface_mean,
        surface_std,
        surface_scale,
        *,
        upper_shape: tuple[int, int],
        surface_shape: tuple[int],
        names: tuple[str, str, str, str, str, str],
    ):
        checks = zip(
            (upper_mean, upper_std, upper_scale, surface_mean, surface_std, surface_scale),
            names,
            (upper_shape,) * 3 + (surface_shape,) * 3,
            (False, True, True, False, True, True),
        )
        (
            self.upper_mean,
            self.upper_std,
            self.upper_scale,
            self.surface_mean,
            self.surface_std,
            self.surface_scale,
        ) = (checked_statistic(*check) for check in checks)

    def normalise(
        self, upper: jnp.ndarray, surface: jnp.ndarray
    ) -> tuple[jnp.ndarray, jnp.ndarray]:
        """Physical inputs -> standardised, float32."""
        upper = (upper.astype(jnp.float32) - _upper(self.upper_mean)) / _upper(self.upper_std)
        surface = (surface.astype(jnp.float32) - self.surface_mean[...]) / self.surface_std[...]
        return upper, surface

    def residual(
        self,
        base_upper: jnp.ndarray,
        base_surface: jnp.ndarray,
        upper: jnp.ndarray,
        surface: jnp.ndarray,
    ) -> tuple[jnp.ndarray, jnp.ndarray]:
        """Physical fields -> their normalised residual from the base (training targets)."""
        return (
            (upper.astype(jnp.float32) - base_upper) / _upper(self.upper_scale),
            (surface.astype(jnp.float32) - base_surface) / self.surface_scale[...],
        )

    def add_residual(
        self,
        base_upper: jnp.ndarray,
        base_surface: jnp.ndarray,
        residual_upper: jnp.ndarray,
        residual_surface: jnp.ndarray,
    ) -> tuple[jnp.ndarray, jnp.ndarray]:
        """Base plus a normalised residual -> physical fields, float32."""
        return (
            base_upper.astype(jnp.float32) + residual_upper * _upper(self.upper_scale),
            base_surface.astype(jnp.float32) + residual_surface * self.surface_scale[...],
        )


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
        fields = ("upper_mean", "upper_std", "upper_diff_std")
        fields += ("surface_mean", "surface_std", "surface_diff_std")
        self.scaling = ResidualScaling(
            *(getattr(stats, name) for name in fields),
            upper_shape=(config.n_levels, config.n_upper_vars),
            surface_shape=(config.n_surface_vars,),
            names=tuple(f"NormalisationStats.{name}" for name in fields),
        )

    def predict_residual(
        self,
        upper: jnp.ndarray,
        surface: jnp.ndarray,
        constants: jnp.ndarray,
        *,
        noise: jnp.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[jnp.ndarray, jnp.ndarray]:
        """The network's prediction of (next - current) / diff_std, float32.

        noise: [batch, noise_input_dim] for a stochastic network (ModelConfig.noise_dim > 0),
        None for a deterministic one. deterministic: no stochastic depth (not the noise).
        """
        upper, surface = self.scaling.normalise(upper, surface)
        # Passed only when given: a deterministic network need not take the argument.
        extra = {} if noise is None else dict(noise=noise)
        return self.network(
            upper, surface, standardise_constants(constants), deterministic=deterministic, **extra
        )

    def residual_targets(
        self,
        upper: jnp.ndarray,
        surface: jnp.ndarray,
        next_upper: jnp.ndarray,
        next_surface: jnp.ndarray,
    ) -> tuple[jnp.ndarray, jnp.ndarray]:
        """The training targets (next - current) / diff_std, in physical-unit inputs, float32."""
        return self.scaling.residual(upper, surface, next_upper, next_surface)

    def __call__(
        self,
        upper: jnp.ndarray,
        surface: jnp.ndarray,
        constants: jnp.ndarray,
        *,
        noise: jnp.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[jnp.ndarray, jnp.ndarray]:
        """One step: physical (upper, surface) at t -> physical (upper, surface) at t + dt.

        noise and deterministic as in :meth:`predict_residual`.
        """
        residual = self.predict_residual(
            upper, surface, constants, noise=noise, deterministic=deterministic
        )
        return self.scaling.add_residual(upper, surface, *residual)
