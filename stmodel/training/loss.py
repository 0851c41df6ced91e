"""The training loss: latitude-area-weighted MAE or MSE of normalised residual errors."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from stmodel.data.layout import VariableLayout
from stmodel.training.config import LossConfig


def channel_weights(layout: VariableLayout, config: LossConfig) -> tuple[np.ndarray, np.ndarray]:
    """(upper [level, var], surface [var]) weights, each normalised to mean 1."""
    levels = np.asarray(layout.levels, np.float64)
    if config.level_weighting == "pressure":
        level_w = levels / levels.mean()
    elif config.level_weighting == "uniform":
        level_w = np.ones_like(levels)
    else:
        raise ValueError(
            f"level_weighting must be 'pressure' or 'uniform', got {config.level_weighting!r}"
        )
    var_w = np.array([config.variable_weight(v) for v in layout.upper_air])
    upper = level_w[:, None] * var_w[None, :]  # [level, var]
    surface = np.array([config.variable_weight(v) for v in layout.surface])
    upper = upper / upper.mean() if upper.size else upper
    surface = surface / surface.mean() if surface.size else surface
    return upper.astype(np.float32), surface.astype(np.float32)


def weighted_error(
    error_upper: jnp.ndarray,
    error_surface: jnp.ndarray,
    upper_scale: jnp.ndarray,
    surface_scale: jnp.ndarray,
    lat_weights: jnp.ndarray,
    upper_weights: jnp.ndarray,
    surface_weights: jnp.ndarray,
    surface_weight: float,
    squared: bool = False,
) -> jnp.ndarray:
    """Scalar loss from errors in physical units: mean absolute, or mean squared if `squared`.

    error_upper [..., level, lat, lon, var], error_surface [..., lat, lon, var];
    scales are the per-channel stds of dt-differences; lat_weights [lat] has mean 1.
    """
    size = jnp.square if squared else jnp.abs
    upper = size(error_upper / upper_scale[:, None, None, :])  # [..., level, lat, lon, var]
    surface = size(error_surface / surface_scale)  # [..., lat, lon, var]
    return weighted_mean(
        upper, surface, lat_weights, upper_weights, surface_weights, surface_weight
    )


def weighted_mean(
    upper: jnp.ndarray,
    surface: jnp.ndarray,
    lat_weights: jnp.ndarray,
    upper_weights: jnp.ndarray,
    surface_weights: jnp.ndarray,
    surface_weight: float,
) -> jnp.ndarray:
    """Scalar mean of per-point scores upper [..., level, lat, lon, var] and surface
    [..., lat, lon, var], weighted by cell area (lat_weights [lat], mean 1), by channel
    (upper_weights [level, var], surface_weights [var]) and surface against upper air:
    the weighting of every training loss (weighted_error, stmodel.training.crps)."""
    upper = upper * lat_weights[:, None, None] * upper_weights[:, None, None, :]
    surface = surface * lat_weights[:, None, None] * surface_weights
    loss = jnp.mean(upper) if upper.size else 0.0
    if surface.size:
        loss = loss + surface_weight * jnp.mean(surface)
    return loss
