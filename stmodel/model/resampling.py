"""2 x 2 down- and up-sampling of the token grid in latitude and longitude (pressure is kept)."""

from __future__ import annotations

import jax.numpy as jnp
from flax import nnx

from stmodel.model.conditional_norm import NormModulation, conditioned
from stmodel.model.precision import DtypePolicy
from stmodel.model.transformer_block import layer_norm
from stmodel.model.window_attention import dense_init
from stmodel.model.window_geometry import symmetric_padding


class DownSample(nnx.Module):
    """Merge 2 x 2 (lat, lon) tokens: LayerNorm(4C), then Linear 4C -> 2C (no bias)."""

    def __init__(
        self,
        dim: int,
        token_grid: tuple[int, int, int],
        *,
        layer_norm_epsilon: float,
        policy: DtypePolicy,
        rngs: nnx.Rngs,
        noise_embedding_dim: int = 0,
    ):
        self.token_grid = tuple(token_grid)
        self.norm = layer_norm(4 * dim, layer_norm_epsilon, policy, rngs)
        if noise_embedding_dim:  # stochastic networks only (stmodel.model.conditional_norm)
            self.norm_noise = NormModulation(noise_embedding_dim, 4 * dim, policy=policy)
        self.linear = nnx.Linear(
            4 * dim,
            2 * dim,
            use_bias=False,
            kernel_init=dense_init,
            dtype=policy.compute,
            param_dtype=policy.param,
            rngs=rngs,
        )

    def __call__(self, x: jnp.ndarray, noise_embedding: jnp.ndarray | None = None) -> jnp.ndarray:
        """[batch, pressure, lat, lon, C] -> [batch, pressure, ceil(lat/2), ceil(lon/2), 2C]."""
        batch, pressure, lat, lon, dim = x.shape
        x = jnp.pad(
            x, ((0, 0), (0, 0), symmetric_padding(lat, 2), symmetric_padding(lon, 2), (0, 0))
        )
        half_lat, half_lon = x.shape[2] // 2, x.shape[3] // 2
        x = x.reshape(batch, pressure, half_lat, 2, half_lon, 2, dim)
        x = x.transpose(0, 1, 2, 4, 3, 5, 6)  # [batch, pressure, lat/2, lon/2, 2, 2, C]
        x = x.reshape(batch, pressure, half_lat, half_lon, 4 * dim)
        modulation = getattr(self, "norm_noise", None)
        return self.linear(conditioned(self.norm, modulation, x, noise_embedding))


class UpSample(nnx.Module):
    """Linear C_in -> 4 C_out (no bias), split each token into 2 x 2, crop, LayerNorm, Linear."""

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        token_grid: tuple[int, int, int],
        *,
        layer_norm_epsilon: float,
        policy: DtypePolicy,
        rngs: nnx.Rngs,
        noise_embedding_dim: int = 0,
    ):
        self.token_grid = tuple(token_grid)  # the fine grid to return to
        self.expand = nnx.Linear(
            in_dim,
            4 * out_dim,
            use_bias=False,
            kernel_init=dense_init,
            dtype=policy.compute,
            param_dtype=policy.param,
            rngs=rngs,
        )
        self.norm = layer_norm(out_dim, layer_norm_epsilon, policy, rngs)
        if noise_embedding_dim:  # stochastic networks only (stmodel.model.conditional_norm)
            self.norm_noise = NormModulation(noise_embedding_dim, out_dim, policy=policy)
        self.linear = nnx.Linear(
            out_dim,
            out_dim,
            kernel_init=dense_init,
            dtype=policy.compute,
            param_dtype=policy.param,
            rngs=rngs,
        )

    def __call__(self, x: jnp.ndarray, noise_embedding: jnp.ndarray | None = None) -> jnp.ndarray:
        """[batch, pressure, lat/2, lon/2, C_in] -> [batch, pressure, lat, lon, C_out]."""
        batch, pressure, half_lat, half_lon, _ = x.shape
        x = self.expand(x)
        out_dim = x.shape[-1] // 4
        x = x.reshape(batch, pressure, half_lat, half_lon, 2, 2, out_dim)
        x = x.transpose(0, 1, 2, 4, 3, 5, 6)  # [batch, pressure, lat/2, 2, lon/2, 2, C_out]
        x = x.reshape(batch, pressure, 2 * half_lat, 2 * half_lon, out_dim)
        _, lat, lon = self.token_grid
        lat0, _ = symmetric_padding(lat, 2)
        lon0, _ = symmetric_padding(lon, 2)
        x = x[:, :, lat0 : lat0 + lat, lon0 : lon0 + lon]  # undo DownSample's padding
        modulation = getattr(self, "norm_noise", None)
        return self.linear(conditioned(self.norm, modulation, x, noise_embedding))
