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

Padding = tuple[tuple[int, int], tuple[int, int], tuple[int, int]]


def _grid_padding(config: ModelConfig) -> Padding:
    """(before, after) zero-padding of the level, lat and lon axes to whole patches."""
    return (
        (-config.n_levels % config.patch[0], 0),
        symmetric_padding(config.grid[0], config.patch[1]),
        symmetric_padding(config.grid[1], config.patch[2]),
    )


# The four patch reshapes below are shared with the downscaling network's embedding and head.


def upper_air_patches(
    upper: jnp.ndarray, patch: tuple[int, int, int], padding: Padding
) -> jnp.ndarray:
    """[batch, level, lat, lon, var] -> [batch, pressure token, lat token, lon token, values]."""
    p_level, p_lat, p_lon = patch
    batch = upper.shape[0]
    upper = jnp.pad(upper, ((0, 0), *padding, (0, 0)))
    n_pressure, n_lat, n_lon = (
        upper.shape[1] // p_level,
        upper.shape[2] // p_lat,
        upper.shape[3] // p_lon,
    )
    upper = upper.reshape(batch, n_pressure, p_level, n_lat, p_lat, n_lon, p_lon, -1)
    upper = upper.transpose(0, 1, 3, 5, 2, 4, 6, 7)
    # [batch, pressure token, lat token, lon token, level in patch, lat in patch, lon in patch, var]
    return upper.reshape(batch, n_pressure, n_lat, n_lon, -1)


def surface_patches(
    surface: jnp.ndarray, patch: tuple[int, int, int], padding: Padding
) -> jnp.ndarray:
    """[batch, lat, lon, field] -> [batch, 1, lat token, lon token, values] (one pressure token)."""
    _, p_lat, p_lon = patch
    batch = surface.shape[0]
    surface = jnp.pad(surface, ((0, 0), padding[1], padding[2], (0, 0)))
    n_lat, n_lon = surface.shape[1] // p_lat, surface.shape[2] // p_lon
    surface = surface.reshape(batch, n_lat, p_lat, n_lon, p_lon, -1)
    surface = surface.transpose(0, 1, 3, 2, 4, 5)
    # [batch, lat token, lon token, lat in patch, lon in patch, field]
    return surface.reshape(batch, 1, n_lat, n_lon, -1)


def upper_air_from_patches(
    values: jnp.ndarray, patch: tuple[int, int, int], padding: Padding, shape: tuple[int, int, int]
) -> jnp.ndarray:
    """Inverse of :func:`upper_air_patches`: [batch, pressure token, lat token, lon token,
    values] -> [batch, level, lat, lon, var] with the padding cropped; `shape` is
    (level, lat, lon) of the unpadded grid."""
    p_level, p_lat, p_lon = patch
    (level0, _), (lat0, _), (lon0, _) = padding
    batch, n_pressure, n_lat, n_lon, _ = values.shape
    upper = values.reshape(batch, n_pressure, n_lat, n_lon, p_level, p_lat, p_lon, -1)
    upper = upper.transpose(0, 1, 4, 2, 5, 3, 6, 7)
    # [batch, pressure token, level in patch, lat token, lat in patch, lon token, lon in patch, var]
    upper = upper.reshape(batch, n_pressure * p_level, n_lat * p_lat, n_lon * p_lon, -1)
    return upper[:, level0 : level0 + shape[0], lat0 : lat0 + shape[1], lon0 : lon0 + shape[2]]


def surface_from_patches(
    values: jnp.ndarray, patch: tuple[int, int, int], padding: Padding, shape: tuple[int, int]
) -> jnp.ndarray:
    """Inverse of :func:`surface_patches`: [batch, lat token, lon token, values] ->
    [batch, lat, lon, var] with the padding cropped; `shape` is the unpadded (lat, lon)."""
    _, p_lat, p_lon = patch
    (lat0, _), (lon0, _) = padding[1], padding[2]
    batch, n_lat, n_lon, _ = values.shape
    surface = values.reshape(batch, n_lat, n_lon, p_lat, p_lon, -1)
    surface = surface.transpose(0, 1, 3, 2, 4, 5)
    # [batch, lat token, lat in patch, lon token, lon in patch, var]
    surface = surface.reshape(batch, n_lat * p_lat, n_lon * p_lon, -1)
    return surface[:, lat0 : lat0 + shape[0], lon0 : lon0 + shape[1]]


class PatchEmbedding(nnx.Module):
    """Upper-air and surface (+ constant) fields -> tokens [batch, pressure token, lat, lon, C].

    The surface token is the last pressure token.
    """

    def __init__(self, config: ModelConfig, *, policy: DtypePolicy, rngs: nnx.Rngs):
        self.config = config
        p_level, p_lat, p_lon = config.patch
        self.upper = nnx.Linear(
            p_level * p_lat * p_lon * config.n_upper_vars,
            config.dim,
            kernel_init=dense_init,
            dtype=policy.compute,
            param_dtype=policy.param,
            rngs=rngs,
        )
        self.surface = nnx.Linear(
            p_lat * p_lon * (config.n_surface_vars + config.n_constant_fields),
            config.dim,
            kernel_init=dense_init,
            dtype=policy.compute,
            param_dtype=policy.param,
            rngs=rngs,
        )

    def __call__(
        self, upper: jnp.ndarray, surface: jnp.ndarray, constants: jnp.ndarray
    ) -> jnp.ndarray:
        config = self.config
        padding = _grid_padding(config)
        upper = self.upper(upper_air_patches(upper, config.patch, padding))
        constants = jnp.broadcast_to(constants[None], (surface.shape[0],) + constants.shape)
        surface = jnp.concatenate([surface, constants.astype(surface.dtype)], axis=-1)
        surface = self.surface(surface_patches(surface, config.patch, padding))
        return jnp.concatenate([upper, surface], axis=1)  # [batch, pressure token, lat, lon, C]


class PatchRecovery(nnx.Module):
    """Tokens [batch, pressure token, lat, lon, C_in] -> upper-air and surface fields (cropped)."""

    def __init__(self, in_dim: int, config: ModelConfig, *, policy: DtypePolicy, rngs: nnx.Rngs):
        self.config = config
        p_level, p_lat, p_lon = config.patch
        self.upper = nnx.Linear(
            in_dim,
            p_level * p_lat * p_lon * config.n_upper_vars,
            kernel_init=dense_init,
            dtype=policy.compute,
            param_dtype=policy.param,
            rngs=rngs,
        )
        self.surface = nnx.Linear(
            in_dim,
            p_lat * p_lon * config.n_surface_vars,
            kernel_init=dense_init,
            dtype=policy.compute,
            param_dtype=policy.param,
            rngs=rngs,
        )

    def __call__(self, x: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
        config = self.config
        padding = _grid_padding(config)
        n_pressure = config.n_upper_tokens
        upper = upper_air_from_patches(
            self.upper(x[:, :n_pressure]), config.patch, padding, (config.n_levels, *config.grid)
        )
        surface = surface_from_patches(
            self.surface(x[:, n_pressure]), config.patch, padding, config.grid
        )
        return upper, surface
