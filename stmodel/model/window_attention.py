"""3D window attention with shifted windows and the Earth-specific positional bias.

Tokens are cut into windows with pads, rolls, reshapes and one transpose (no
gathers); the padding and edge masks are static constants of the compiled
program (see :mod:`stmodel.model.window_geometry`). The query/key/value and
output projections run on the real tokens only; only the attention products see
the padded windows.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from stmodel.model.earth_position_bias import EarthPositionBias
from stmodel.model.precision import DtypePolicy
from stmodel.model.window_geometry import MASKED_LOGIT, WindowGeometry

dense_init = nnx.initializers.truncated_normal(stddev=0.02)


def _to_padded_rolled(x: jnp.ndarray, geometry: WindowGeometry) -> jnp.ndarray:
    """[batch, pressure, lat, lon, ...] real tokens -> the padded (and, if shifted, rolled) grid."""
    shift_pressure, shift_lat, shift_lon = geometry.shift
    if shift_lon:
        x = jnp.roll(x, -shift_lon, axis=3)  # periodic: roll the real longitudes
    pad = [(0, 0), *geometry.padding] + [(0, 0)] * (x.ndim - 4)
    x = jnp.pad(x, pad)
    if shift_pressure or shift_lat:
        x = jnp.roll(x, (-shift_pressure, -shift_lat), axis=(1, 2))
    return x


def _from_padded_rolled(x: jnp.ndarray, geometry: WindowGeometry) -> jnp.ndarray:
    """Inverse of :func:`_to_padded_rolled`: back to the real tokens."""
    shift_pressure, shift_lat, shift_lon = geometry.shift
    if shift_pressure or shift_lat:
        x = jnp.roll(x, (shift_pressure, shift_lat), axis=(1, 2))
    pressure, lat, lon = geometry.token_grid
    (p0, _), (l0, _), (o0, _) = geometry.padding
    x = x[:, p0:p0 + pressure, l0:l0 + lat, o0:o0 + lon]
    if shift_lon:
        x = jnp.roll(x, shift_lon, axis=3)
    return x


def partition_qkv(qkv: jnp.ndarray, geometry: WindowGeometry, heads: int) -> jnp.ndarray:
    """[batch, pressure, lat, lon, 3 * channel] -> [3, batch, p win, lat win, lon win, head, token, head_dim]."""
    qkv = _to_padded_rolled(qkv, geometry)
    batch = qkv.shape[0]
    n_pressure, n_lat, n_lon = geometry.window_counts
    w_pressure, w_lat, w_lon = geometry.window
    head_dim = qkv.shape[-1] // (3 * heads)
    qkv = qkv.reshape(batch, n_pressure, w_pressure, n_lat, w_lat, n_lon, w_lon, 3, heads, head_dim)
    qkv = qkv.transpose(7, 0, 1, 3, 5, 8, 2, 4, 6, 9)
    # [3, batch, p win, lat win, lon win, head, p, lat, lon, head_dim]
    return qkv.reshape(3, batch, n_pressure, n_lat, n_lon, heads, geometry.tokens_per_window, head_dim)


def merge_windows(windows: jnp.ndarray, geometry: WindowGeometry) -> jnp.ndarray:
    """[batch, p win, lat win, lon win, head, token, head_dim] -> [batch, pressure, lat, lon, channel]."""
    batch, n_pressure, n_lat, n_lon, heads, _, head_dim = windows.shape
    w_pressure, w_lat, w_lon = geometry.window
    x = windows.reshape(batch, n_pressure, n_lat, n_lon, heads, w_pressure, w_lat, w_lon, head_dim)
    x = x.transpose(0, 1, 5, 2, 6, 3, 7, 4, 8)
    # [batch, p win, p, lat win, lat, lon win, lon, head, head_dim]
    padded_pressure, padded_lat, padded_lon = geometry.padded_grid
    x = x.reshape(batch, padded_pressure, padded_lat, padded_lon, heads * head_dim)
    return _from_padded_rolled(x, geometry)


class EarthWindowAttention(nnx.Module):
    def __init__(self, dim: int, heads: int, geometry: WindowGeometry, *, policy: DtypePolicy,
                 rngs: nnx.Rngs):
        self.geometry = geometry
        self.heads = heads
        self.policy = policy
        self.qkv = nnx.Linear(dim, 3 * dim, kernel_init=dense_init, dtype=policy.compute,
                              param_dtype=policy.param, rngs=rngs)
        self.proj = nnx.Linear(dim, dim, kernel_init=dense_init, dtype=policy.compute,
                               param_dtype=policy.param, rngs=rngs)
        self.position_bias = EarthPositionBias(geometry.window, geometry.n_window_types, heads,
                                               param_dtype=policy.param, rngs=rngs)

    def masked_bias(self) -> jnp.ndarray:
        """Position bias with the edge and padding masks folded in: [p win, lat win, 1, head, query, key]."""
        geometry = self.geometry
        n_pressure, n_lat, _ = geometry.window_counts
        tokens = geometry.tokens_per_window
        bias = self.position_bias().astype(jnp.float32)
        bias = bias.reshape(n_pressure, n_lat, 1, self.heads, tokens, tokens)
        allowed = geometry.pressure_latitude_allowed()[:, :, None, None]
        # [p win, lat win, 1, 1, query, key]
        return jnp.where(allowed, bias, MASKED_LOGIT)

    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        """[batch, pressure, lat, lon, channel] -> the same shape."""
        geometry = self.geometry
        head_dim = x.shape[-1] // self.heads
        qkv = self.qkv(x)  # [batch, pressure, lat, lon, 3 * channel]
        query, key, value = partition_qkv(qkv, geometry, self.heads)
        # each [batch, p win, lat win, lon win, head, token, head_dim]
        logits = jnp.einsum("...qd,...kd->...qk", query * head_dim ** -0.5, key)
        # Softmax in float32 whatever the compute dtype.
        logits = logits.astype(jnp.float32) + self.masked_bias()
        if geometry.longitude_is_padded:
            allowed = geometry.longitude_key_allowed()[:, None, None, :]  # [lon win, 1, 1, key]
            logits = jnp.where(allowed, logits, MASKED_LOGIT)
        # Softmax with the normalisation applied to the [token, head_dim] output rather than to
        # the [token, token] weights: fewer divisions, forward and backward.
        logits = logits - jax.lax.stop_gradient(logits.max(axis=-1, keepdims=True))
        weights = jnp.exp(logits)
        normaliser = weights.sum(axis=-1, keepdims=True)
        windows = jnp.einsum("...qk,...kd->...qd", weights.astype(value.dtype), value)
        windows = windows / normaliser.astype(value.dtype)
        return self.proj(merge_windows(windows, geometry))
