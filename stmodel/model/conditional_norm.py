"""Layer norms conditioned on a noise vector: the only way noise enters a stochastic network.

As in FGN (Alet et al. 2025, "Skillful joint probabilistic weather forecasting from
marginals") and AIFS-ENS (Lang et al. 2024), a Gaussian vector z per sample, shared over
the globe, modulates every layer norm:

    y = LayerNorm(x) * (1 + s(e)) + b(e),    e = NoiseEmbedding(z)

with s and b linear maps of the embedded noise, one pair per norm. s and b start at zero
(as adaLN-Zero, Peebles & Xie 2023), so a network warm-started from a deterministic one
computes exactly the deterministic network's output for any z, and training grows the
noise's influence from there. The modulation sits beside its LayerNorm (attributes named
``<norm>_noise``), so every existing parameter keeps its name.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from stmodel.model.precision import DtypePolicy
from stmodel.model.window_attention import dense_init


def per_sample_product(x: jnp.ndarray, kernel: jnp.ndarray) -> jnp.ndarray:
    """x [batch, in] @ kernel [in, out] -> [batch, out], summed over `in` in a fixed order by
    a scan of elementwise products rather than by a dot (or a multiply-reduce, which XLA
    turns back into one): XLA picks dot kernels with other rounding for a batch of 1 than
    for a batch of 2, and an ensemble's file must be the same bit for bit whatever the
    batch. These products are tiny (one vector per sample), so the cost is nil."""

    def add_row(total, row):  # row: (x[:, k] [batch], kernel[k] [out])
        return total + row[0][:, None] * row[1][None, :], None

    zero = jnp.zeros((x.shape[0], kernel.shape[1]), jnp.result_type(x, kernel))
    return jax.lax.scan(add_row, zero, (x.T, kernel))[0]  # [batch, out]


class NoiseEmbedding(nnx.Module):
    """z [batch, noise_dim] -> e [batch, width]: one small MLP shared by every conditioned norm.

    Shared so the per-norm maps stay a [width, dim] matrix each, and computed once per
    call, not once per block. SiLU, as DiT's adaLN conditioning.
    """

    def __init__(self, noise_dim: int, width: int, *, policy: DtypePolicy, rngs: nnx.Rngs):
        kwargs = dict(kernel_init=dense_init, dtype=policy.compute, param_dtype=policy.param)
        self.fc1 = nnx.Linear(noise_dim, width, rngs=rngs, **kwargs)
        self.fc2 = nnx.Linear(width, width, rngs=rngs, **kwargs)

    def __call__(self, noise: jnp.ndarray) -> jnp.ndarray:
        x = noise.astype(self.fc1.dtype)
        for layer in (self.fc1, self.fc2):
            kernel = layer.kernel[...].astype(layer.dtype)
            x = jax.nn.silu(per_sample_product(x, kernel) + layer.bias[...].astype(layer.dtype))
        return x


class NormModulation(nnx.Module):
    """(normed, e) -> normed * (1 + e @ scale) + e @ shift, per sample, zero at initialisation.

    The parameters are created as zeros without drawing from any RNG stream, so adding
    them leaves every other layer's initialisation from a seed unchanged.
    """

    def __init__(self, embedding_dim: int, dim: int, *, policy: DtypePolicy):
        self.scale = nnx.Param(jnp.zeros((embedding_dim, dim), policy.param))
        self.shift = nnx.Param(jnp.zeros((embedding_dim, dim), policy.param))
        self.compute_dtype = policy.compute

    def __call__(self, normed: jnp.ndarray, embedding: jnp.ndarray) -> jnp.ndarray:
        """normed [batch, ..., dim] (any token layout: the modulation is the same for every
        token of a sample, so the window frame's roll does not affect it), embedding
        [batch, width] -> normed's shape."""
        embedding = embedding.astype(self.compute_dtype)
        scale = per_sample_product(embedding, self.scale[...].astype(self.compute_dtype))
        shift = per_sample_product(embedding, self.shift[...].astype(self.compute_dtype))
        per_sample = (slice(None),) + (None,) * (normed.ndim - 2) + (slice(None),)
        # [batch, 1, ..., 1, dim]: one modulation per sample, broadcast over its tokens.
        # At zero parameters this is normed * 1 + 0: exactly normed.
        return normed * (1 + scale[per_sample]) + shift[per_sample]


def conditioned(
    norm: nnx.LayerNorm,
    modulation: NormModulation | None,
    x: jnp.ndarray,
    embedding: jnp.ndarray | None,
) -> jnp.ndarray:
    """norm(x), modulated by the embedded noise when there is one.

    embedding None is the deterministic network's computation, unchanged.
    """
    normed = norm(x)
    if embedding is None:
        return normed
    if modulation is None:
        raise ValueError("noise given to a layer norm built without noise conditioning")
    return modulation(normed, embedding)
