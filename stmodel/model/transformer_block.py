"""One 3D Earth-specific transformer block: window attention then a GELU MLP, with residuals."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from stmodel.model.conditional_norm import NormModulation, conditioned
from stmodel.model.precision import DtypePolicy
from stmodel.model.window_attention import (
    EarthWindowAttention,
    dense_init,
    roll_from_window_frame,
    roll_to_window_frame,
)
from stmodel.model.window_geometry import WindowGeometry


class DropPath(nnx.Module):
    """Stochastic depth: drop a whole residual branch per sample, rescaling the kept ones."""

    def __init__(self, rate: float, *, rngs: nnx.Rngs):
        self.rate = float(rate)
        self.rngs = rngs["dropout"].fork() if self.rate > 0 else nnx.data(None)

    def __call__(self, x: jnp.ndarray, *, deterministic: bool) -> jnp.ndarray:
        if deterministic or self.rate == 0.0:
            return x
        keep_probability = 1.0 - self.rate
        shape = (x.shape[0],) + (1,) * (x.ndim - 1)  # one draw per sample
        keep = jax.random.bernoulli(self.rngs(), keep_probability, shape)
        return x * (keep.astype(x.dtype) / jnp.asarray(keep_probability, x.dtype))


def exact_gelu(x: jnp.ndarray) -> jnp.ndarray:
    """GELU with the exact normal CDF, x * Phi(x), as the paper's PyTorch code (nn.GELU()).

    Written with erf: jax.nn.gelu(approximate=False) uses erfc, which XLA:CPU evaluates
    about 3x slower. The two agree to float32 rounding.
    """
    return 0.5 * x * (1.0 + jax.lax.erf(x * 0.7071067811865476))


class Mlp(nnx.Module):
    def __init__(self, dim: int, hidden: int, *, policy: DtypePolicy, rngs: nnx.Rngs):
        self.fc1 = nnx.Linear(
            dim,
            hidden,
            kernel_init=dense_init,
            dtype=policy.compute,
            param_dtype=policy.param,
            rngs=rngs,
        )
        self.fc2 = nnx.Linear(
            hidden,
            dim,
            kernel_init=dense_init,
            dtype=policy.compute,
            param_dtype=policy.param,
            rngs=rngs,
        )

    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        return self.fc2(exact_gelu(self.fc1(x)))


def layer_norm(dim: int, epsilon: float, policy: DtypePolicy, rngs: nnx.Rngs) -> nnx.LayerNorm:
    return nnx.LayerNorm(
        dim, epsilon=epsilon, dtype=policy.compute, param_dtype=policy.param, rngs=rngs
    )


class EarthTransformerBlock(nnx.Module):
    """Attention and MLP sub-layers on a [batch, pressure, lat, lon, channel] token grid.

    post_norm=True is the paper's ``x + drop(norm(f(x)))``; False the common
    pre-norm variant ``x + drop(f(norm(x)))``. noise_embedding_dim > 0 conditions both
    norms on a per-sample noise embedding (stmodel.model.conditional_norm), through
    ``attention_norm_noise`` and ``mlp_norm_noise`` beside them.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        geometry: WindowGeometry,
        *,
        mlp_ratio: float,
        drop_path: float,
        post_norm: bool,
        layer_norm_epsilon: float,
        policy: DtypePolicy,
        rngs: nnx.Rngs,
        attention: str = "auto",
        noise_embedding_dim: int = 0,
    ):
        self.post_norm = post_norm
        self.attention = EarthWindowAttention(
            dim, heads, geometry, policy=policy, rngs=rngs, attention=attention
        )
        self.attention_norm = layer_norm(dim, layer_norm_epsilon, policy, rngs)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), policy=policy, rngs=rngs)
        self.mlp_norm = layer_norm(dim, layer_norm_epsilon, policy, rngs)
        self.drop_path = DropPath(drop_path, rngs=rngs)
        if noise_embedding_dim:
            # Only in stochastic networks: a deterministic one keeps its module tree exactly.
            self.attention_norm_noise = NormModulation(noise_embedding_dim, dim, policy=policy)
            self.mlp_norm_noise = NormModulation(noise_embedding_dim, dim, policy=policy)

    def __call__(
        self,
        x: jnp.ndarray,
        *,
        deterministic: bool = True,
        noise_embedding: jnp.ndarray | None = None,
    ) -> jnp.ndarray:
        """[batch, pressure, lat, lon, channel] -> the same shape; noise_embedding
        [batch, width] (stochastic networks) modulates both norms.

        deterministic: no stochastic depth (evaluation); it says nothing of the noise.
        """
        geometry = self.attention.geometry
        # Everything but attention is per token, so the whole block runs in the window frame
        # (a roll of the token axes: the per-sample noise broadcasts the same in it).
        x = roll_to_window_frame(x, geometry)
        attention = self.attention.attend_in_window_frame

        def attention_norm(y):
            modulation = getattr(self, "attention_norm_noise", None)
            return conditioned(self.attention_norm, modulation, y, noise_embedding)

        def mlp_norm(y):
            modulation = getattr(self, "mlp_norm_noise", None)
            return conditioned(self.mlp_norm, modulation, y, noise_embedding)

        if self.post_norm:
            x = x + self.drop_path(attention_norm(attention(x)), deterministic=deterministic)
            x = x + self.drop_path(mlp_norm(self.mlp(x)), deterministic=deterministic)
        else:
            x = x + self.drop_path(attention(attention_norm(x)), deterministic=deterministic)
            x = x + self.drop_path(self.mlp(mlp_norm(x)), deterministic=deterministic)
        return roll_from_window_frame(x, geometry)


# What a rematerialised block keeps besides its input (ModelConfig.remat names them): the
# outputs of every matrix product, or of those without batch dimensions (the dense layers,
# not the attention products).
REMAT_POLICIES = {
    True: None,
    "dots": jax.checkpoint_policies.dots_saveable,
    "dots_no_batch": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}


class Stage(nnx.Module):
    """Blocks at one resolution, alternating plain and shifted windows."""

    def __init__(
        self,
        dim: int,
        heads: int,
        token_grid: tuple[int, int, int],
        depth: int,
        *,
        window: tuple[int, int, int],
        drop_path_rates: list[float],
        mlp_ratio: float,
        post_norm: bool,
        layer_norm_epsilon: float,
        remat: bool | str,
        policy: DtypePolicy,
        rngs: nnx.Rngs,
        attention: str = "auto",
        noise_embedding_dim: int = 0,
    ):
        self.remat = remat
        self.blocks = nnx.List(
            [
                EarthTransformerBlock(
                    dim,
                    heads,
                    WindowGeometry(token_grid, window, shifted=index % 2 == 1),
                    mlp_ratio=mlp_ratio,
                    drop_path=drop_path_rates[index],
                    post_norm=post_norm,
                    layer_norm_epsilon=layer_norm_epsilon,
                    policy=policy,
                    rngs=rngs,
                    attention=attention,
                    noise_embedding_dim=noise_embedding_dim,
                )
                for index in range(depth)
            ]
        )

    def __call__(
        self,
        x: jnp.ndarray,
        *,
        deterministic: bool = True,
        noise_embedding: jnp.ndarray | None = None,
    ) -> jnp.ndarray:
        for block in self.blocks:
            if self.remat:
                # Keep each block's input (and what the policy saves) for the backward pass;
                # recompute the rest.
                x = nnx.remat(
                    lambda b, y, e: b(y, deterministic=deterministic, noise_embedding=e),
                    policy=REMAT_POLICIES[self.remat],
                )(block, x, noise_embedding)
            else:
                x = block(x, deterministic=deterministic, noise_embedding=noise_embedding)
        return x
