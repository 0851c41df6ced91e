"""3D window attention with shifted windows and the Earth-specific positional bias.

Tokens are cut into windows with one roll of the real tokens, zero insertion,
a reshape and one transpose (no gathers); the padding and edge masks are static
constants of the compiled program (see :mod:`stmodel.model.window_geometry`).
The query/key/value and output projections run on the real tokens only; only
the attention products see the padded windows.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import nnx

from stmodel.model.earth_position_bias import EarthPositionBias
from stmodel.model.precision import DtypePolicy
from stmodel.model.window_geometry import MASKED_LOGIT, WindowGeometry

dense_init = nnx.initializers.truncated_normal(stddev=0.02)


def roll_to_window_frame(x: jnp.ndarray, geometry: WindowGeometry) -> jnp.ndarray:
    """[batch, pressure, lat, lon, ...] -> the same tokens rolled as the (shifted) windows need."""
    roll = geometry.real_roll
    if any(roll):
        x = jnp.roll(x, tuple(-r for r in roll), axis=(1, 2, 3))
    return x


def roll_from_window_frame(x: jnp.ndarray, geometry: WindowGeometry) -> jnp.ndarray:
    """Inverse of :func:`roll_to_window_frame`."""
    roll = geometry.real_roll
    if any(roll):
        x = jnp.roll(x, roll, axis=(1, 2, 3))
    return x


def _insert_padding(x: jnp.ndarray, geometry: WindowGeometry) -> jnp.ndarray:
    """Real tokens in the window frame -> the padded grid of whole windows (zeros inserted)."""
    for axis, (front, index, count) in zip((1, 2, 3), geometry.zero_insertion):
        if not (front or count):
            continue
        zeros_shape = list(x.shape)
        pieces = []
        for piece in (front, jax.lax.slice_in_dim(x, 0, index, axis=axis), count,
                      jax.lax.slice_in_dim(x, index, x.shape[axis], axis=axis)):
            if isinstance(piece, int):  # a run of zeros this long
                zeros_shape[axis] = piece
                piece = jnp.zeros(zeros_shape, x.dtype)
            if piece.shape[axis]:
                pieces.append(piece)
        x = jnp.concatenate(pieces, axis=axis)
    return x


def _remove_padding(x: jnp.ndarray, geometry: WindowGeometry) -> jnp.ndarray:
    """Inverse of :func:`_insert_padding`: keep the real tokens."""
    for axis, (front, index, count) in zip((1, 2, 3), geometry.zero_insertion):
        if not (front or count):
            continue
        length = geometry.token_grid[axis - 1]
        head = jax.lax.slice_in_dim(x, front, front + index, axis=axis)
        tail = jax.lax.slice_in_dim(x, front + index + count, front + length + count, axis=axis)
        x = jnp.concatenate([head, tail], axis=axis) if tail.shape[axis] else head
    return x


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def partition_qkv(qkv: jnp.ndarray, geometry: WindowGeometry, heads: int
                  ) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
    """[batch, pressure, lat, lon, 3 * channel] in the window frame -> query, key and value,
    each [batch, p win, lat win, lon win, head, token, head_dim].

    The gradient is written out (one stack and the inverse transpose) because autodiff
    of the three slices would pad each cotangent to the full stacked size and add them.
    """
    return _partition_qkv(qkv, geometry, heads)


def _partition_qkv(qkv, geometry, heads):
    qkv = _insert_padding(qkv, geometry)
    batch = qkv.shape[0]
    n_pressure, n_lat, n_lon = geometry.window_counts
    w_pressure, w_lat, w_lon = geometry.window
    head_dim = qkv.shape[-1] // (3 * heads)
    qkv = qkv.reshape(batch, n_pressure, w_pressure, n_lat, w_lat, n_lon, w_lon, 3, heads, head_dim)
    qkv = qkv.transpose(7, 0, 1, 3, 5, 8, 2, 4, 6, 9)
    # [3, batch, p win, lat win, lon win, head, p, lat, lon, head_dim]
    qkv = qkv.reshape(3, batch, n_pressure, n_lat, n_lon, heads, geometry.tokens_per_window, head_dim)
    return qkv[0], qkv[1], qkv[2]


def _partition_qkv_forward(qkv, geometry, heads):
    return _partition_qkv(qkv, geometry, heads), None


def _partition_qkv_backward(geometry, heads, _, cotangents):
    grad = jnp.stack(cotangents)  # [3, batch, p win, lat win, lon win, head, token, head_dim]
    _, batch, n_pressure, n_lat, n_lon, _, _, head_dim = grad.shape
    w_pressure, w_lat, w_lon = geometry.window
    grad = grad.reshape(3, batch, n_pressure, n_lat, n_lon, heads, w_pressure, w_lat, w_lon, head_dim)
    grad = grad.transpose(1, 2, 6, 3, 7, 4, 8, 0, 5, 9)
    # [batch, p win, p, lat win, lat, lon win, lon, 3, head, head_dim]
    padded_pressure, padded_lat, padded_lon = geometry.padded_grid
    grad = grad.reshape(batch, padded_pressure, padded_lat, padded_lon, 3 * heads * head_dim)
    return (_remove_padding(grad, geometry),)


partition_qkv.defvjp(_partition_qkv_forward, _partition_qkv_backward)


def merge_windows(windows: jnp.ndarray, geometry: WindowGeometry) -> jnp.ndarray:
    """[batch, p win, lat win, lon win, head, token, head_dim]
    -> [batch, pressure, lat, lon, channel] in the window frame."""
    batch, n_pressure, n_lat, n_lon, heads, _, head_dim = windows.shape
    w_pressure, w_lat, w_lon = geometry.window
    x = windows.reshape(batch, n_pressure, n_lat, n_lon, heads, w_pressure, w_lat, w_lon, head_dim)
    x = x.transpose(0, 1, 5, 2, 6, 3, 7, 4, 8)
    # [batch, p win, p, lat win, lat, lon win, lon, head, head_dim]
    padded_pressure, padded_lat, padded_lon = geometry.padded_grid
    x = x.reshape(batch, padded_pressure, padded_lat, padded_lon, heads * head_dim)
    return _remove_padding(x, geometry)


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
        frame = roll_to_window_frame(x, self.geometry)
        return roll_from_window_frame(self.attend_in_window_frame(frame), self.geometry)

    def attend_in_window_frame(self, x: jnp.ndarray) -> jnp.ndarray:
        """Attention on tokens already rolled by :func:`roll_to_window_frame`; same frame out."""
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
