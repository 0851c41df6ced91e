"""Patch embedding of the gridded fields into tokens, and patch recovery back to the grid.

A convolution whose stride equals its kernel is a reshape followed by a matrix
product, which is how both directions are written here (no convolution
primitives, which are slower on CPU for this shape).

Padding: the grid is zero-padded to whole patches, half before and half after in
latitude and longitude. Levels are padded at the start of the level axis, i.e.
above the highest level (levels are in hPa ascending): the surface-adjacent
levels are then grouped as in the paper (1000 with 925 hPa, ..., 50 hPa with the
padding), and the surface token, appended as the last pressure token, sits next
to the 1000 hPa token.
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import nnx

from stmodel.model.config import ModelConfig
from stmodel.model.precision import DtypePolicy
from stmodel.model.window_attention import dense_init
from stmodel.model.window_geometry import symmetric_padding


def _grid_padding(config: ModelConfig) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """(before, after) zero-padding of the level, lat and lon axes to whole patches."""
    return ((-config.n_levels % config.patch[0], 0),
            symmetric_padding(config.grid[0], config.patch[1]),
            symmetric_padding(config.grid[1], config.patch[2]))


class PatchEmbedding(nnx.Module):
    """Upper-air and surface (+ constant) fields -> tokens [batch, pressure token, lat, lon, C].

    The surface token is the last pressure token.
    """

    def __init__(self, config: ModelConfig, *, policy: DtypePolicy, rngs: nnx.Rngs):
        self.config = config
        p_level, p_lat, p_lon = config.patch
        self.upper = nnx.Linear(p_level * p_lat * p_lon * config.n_upper_vars, config.dim,
                                kernel_init=dense_init, dtype=policy.compute,
                                param_dtype=policy.param, rngs=rngs)
        self.surface = nnx.Linear(p_lat * p_lon * (config.n_surface_vars + config.n_constant_fields),
                                  config.dim, kernel_init=dense_init, dtype=policy.compute,
                                  param_dtype=policy.param, rngs=rngs)

    def __call__(self, upper: jnp.ndarray, surface: jnp.ndarray, constants: jnp.ndarray) -> jnp.ndarray:
        config = self.config
        p_level, p_lat, p_lon = config.patch
        level_pad, lat_pad, lon_pad = _grid_padding(config)
        batch = upper.shape[0]
        n_pressure = config.n_upper_tokens
        _, n_lat, n_lon = config.token_grid

        upper = jnp.pad(upper, ((0, 0), level_pad, lat_pad, lon_pad, (0, 0)))
        upper = upper.reshape(batch, n_pressure, p_level, n_lat, p_lat, n_lon, p_lon, -1)
        upper = upper.transpose(0, 1, 3, 5, 2, 4, 6, 7)
        # [batch, pressure token, lat token, lon token, level in patch, lat in patch, lon in patch, var]
        upper = self.upper(upper.reshape(batch, n_pressure, n_lat, n_lon, -1))

        constants = jnp.broadcast_to(constants[None], (batch,) + constants.shape)
        surface = jnp.concatenate([surface, constants.astype(surface.dtype)], axis=-1)
        surface = jnp.pad(surface, ((0, 0), lat_pad, lon_pad, (0, 0)))
        surface = surface.reshape(batch, n_lat, p_lat, n_lon, p_lon, -1)
        surface = surface.transpose(0, 1, 3, 2, 4, 5)
        # [batch, lat token, lon token, lat in patch, lon in patch, field]
        surface = self.surface(surface.reshape(batch, 1, n_lat, n_lon, -1))
        return jnp.concatenate([upper, surface], axis=1)  # [batch, pressure token, lat, lon, C]


class PatchRecovery(nnx.Module):
    """Tokens [batch, pressure token, lat, lon, C_in] -> upper-air and surface fields (cropped)."""

    def __init__(self, in_dim: int, config: ModelConfig, *, policy: DtypePolicy, rngs: nnx.Rngs):
        self.config = config
        p_level, p_lat, p_lon = config.patch
        self.upper = nnx.Linear(in_dim, p_level * p_lat * p_lon * config.n_upper_vars,
                                kernel_init=dense_init, dtype=policy.compute,
                                param_dtype=policy.param, rngs=rngs)
        self.surface = nnx.Linear(in_dim, p_lat * p_lon * config.n_surface_vars,
                                  kernel_init=dense_init, dtype=policy.compute,
                                  param_dtype=policy.param, rngs=rngs)

    def __call__(self, x: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
        config = self.config
        p_level, p_lat, p_lon = config.patch
        (level0, _), (lat0, _), (lon0, _) = _grid_padding(config)
        n_lat_cells, n_lon_cells = config.grid
        batch, _, n_lat, n_lon, _ = x.shape
        n_pressure = config.n_upper_tokens

        upper = self.upper(x[:, :n_pressure])
        upper = upper.reshape(batch, n_pressure, n_lat, n_lon, p_level, p_lat, p_lon, -1)
        upper = upper.transpose(0, 1, 4, 2, 5, 3, 6, 7)
        # [batch, pressure token, level in patch, lat token, lat in patch, lon token, lon in patch, var]
        upper = upper.reshape(batch, n_pressure * p_level, n_lat * p_lat, n_lon * p_lon, -1)
        upper = upper[:, level0:level0 + config.n_levels, lat0:lat0 + n_lat_cells,
                      lon0:lon0 + n_lon_cells]

        surface = self.surface(x[:, n_pressure])
        surface = surface.reshape(batch, n_lat, n_lon, p_lat, p_lon, -1)
        surface = surface.transpose(0, 1, 3, 2, 4, 5)
        # [batch, lat token, lat in patch, lon token, lon in patch, var]
        surface = surface.reshape(batch, n_lat * p_lat, n_lon * p_lon, -1)
        surface = surface[:, lat0:lat0 + n_lat_cells, lon0:lon0 + n_lon_cells]
        return upper, surface
