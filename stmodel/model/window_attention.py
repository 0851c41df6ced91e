"""3D window attention with shifted windows and the Earth-specific positional bias.

Tokens are cut into windows with one roll of the real tokens, then, per window
group (see :mod:`stmodel.model.window_geometry`), a slice, a reshape and one
transpose: no gathers, and no padded tokens. The bias indices and edge masks
are static constants of the compiled program.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import nnx

from stmodel.model.earth_position_bias import EarthPositionBias
from stmodel.model.precision import DtypePolicy
from stmodel.model.window_geometry import MASKED_LOGIT, WindowGeometry, WindowGroup

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


def _concatenate(pieces: list[jnp.ndarray], axis: int) -> jnp.ndarray:
    return pieces[0] if len(pieces) == 1 else jnp.concatenate(pieces, axis=axis)


def join_groups(boxes: list[jnp.ndarray], geometry: WindowGeometry) -> jnp.ndarray:
    """One [batch, pressure, lat, lon, ...] box per window group (pressure-major order)
    -> the whole token grid, by concatenating along lon, then lat, then pressure."""
    n_pressure, n_lat, n_lon = geometry.run_counts
    lon_rows = [
        _concatenate(boxes[i * n_lon : (i + 1) * n_lon], 3) for i in range(n_pressure * n_lat)
    ]
    lat_planes = [_concatenate(lon_rows[i * n_lat : (i + 1) * n_lat], 2) for i in range(n_pressure)]
    return _concatenate(lat_planes, 1)


def _cut_windows(box: jnp.ndarray, group: WindowGroup, heads: int) -> jnp.ndarray:
    """[batch, pressure, lat, lon, 3 * channel] box of one group
    -> [3, batch, p win, lat win, lon win, head, token, head_dim]."""
    batch = box.shape[0]
    n_pressure, n_lat, n_lon = group.window_counts
    w_pressure, w_lat, w_lon = group.window_shape
    head_dim = box.shape[-1] // (3 * heads)
    box = box.reshape(batch, n_pressure, w_pressure, n_lat, w_lat, n_lon, w_lon, 3, heads, head_dim)
    box = box.transpose(7, 0, 1, 3, 5, 8, 2, 4, 6, 9)
    # [3, batch, p win, lat win, lon win, head, p, lat, lon, head_dim]
    return box.reshape(3, batch, n_pressure, n_lat, n_lon, heads, group.tokens_per_window, head_dim)


def _uncut_windows(windows: jnp.ndarray, group: WindowGroup) -> jnp.ndarray:
    """[L..., batch, p win, lat win, lon win, head, token, head_dim] (any leading axes L)
    -> the group's box [batch, pressure, lat, lon, channel], channels ordered (L..., head,
    head_dim): the inverse of :func:`_cut_windows` when L is the query/key/value axis."""
    lead = windows.ndim - 7
    *leading, batch, n_pressure, n_lat, n_lon, heads, _, head_dim = windows.shape
    w_pressure, w_lat, w_lon = group.window_shape
    x = windows.reshape(
        *leading, batch, n_pressure, n_lat, n_lon, heads, w_pressure, w_lat, w_lon, head_dim
    )
    axes = [lead + a for a in (0, 1, 5, 2, 6, 3, 7)] + list(range(lead)) + [lead + 4, lead + 8]
    x = x.transpose(axes)
    # [batch, p win, p, lat win, lat, lon win, lon, L..., head, head_dim]
    return x.reshape(batch, n_pressure * w_pressure, n_lat * w_lat, n_lon * w_lon, -1)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2))
def partition_qkv(
    qkv: jnp.ndarray, geometry: WindowGeometry, heads: int
) -> list[tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]]:
    """[batch, pressure, lat, lon, 3 * channel] in the window frame -> per window group,
    query, key and value, each [batch, p win, lat win, lon win, head, token, head_dim].

    The gradient is written out (the inverse transposes and one concatenation) because
    autodiff of the slices would pad each cotangent to the full grid and add them.
    """
    return _partition_qkv(qkv, geometry, heads)


def _partition_qkv(qkv, geometry, heads):
    partitions = []
    for group in geometry.groups:
        windows = _cut_windows(qkv[(slice(None), *group.slices)], group, heads)
        partitions.append((windows[0], windows[1], windows[2]))
    return partitions


def _partition_qkv_forward(qkv, geometry, heads):
    return _partition_qkv(qkv, geometry, heads), None


def _partition_qkv_backward(geometry, heads, _, cotangents):
    boxes = [
        _uncut_windows(jnp.stack(grads), group)  # [batch, pressure, lat, lon, 3 * channel]
        for grads, group in zip(cotangents, geometry.groups)
    ]
    return (join_groups(boxes, geometry),)


partition_qkv.defvjp(_partition_qkv_forward, _partition_qkv_backward)


class EarthWindowAttention(nnx.Module):
    def __init__(
        self, dim: int, heads: int, geometry: WindowGeometry, *, policy: DtypePolicy, rngs: nnx.Rngs
    ):
        self.geometry = geometry
        self.heads = heads
        self.policy = policy
        self.qkv = nnx.Linear(
            dim,
            3 * dim,
            kernel_init=dense_init,
            dtype=policy.compute,
            param_dtype=policy.param,
            rngs=rngs,
        )
        self.proj = nnx.Linear(
            dim,
            dim,
            kernel_init=dense_init,
            dtype=policy.compute,
            param_dtype=policy.param,
            rngs=rngs,
        )
        self.position_bias = EarthPositionBias(
            geometry.window, geometry.n_window_types, heads, param_dtype=policy.param, rngs=rngs
        )

    def masked_bias(self, group: WindowGroup) -> jnp.ndarray:
        """Position bias of a window group with its edge mask folded in:
        [p win, lat win, 1, head, query, key], float32."""
        bias = self.position_bias(group.bias_types, group.bias_rows).astype(jnp.float32)
        # [p win, lat win, head, query, key]
        if group.allowed is not None:
            allowed = group.allowed if group.allowed.ndim == 2 else group.allowed[:, :, None]
            # [(p win, lat win, 1,) query, key]
            bias = jnp.where(allowed, bias, MASKED_LOGIT)
        return bias[:, :, None]

    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        """[batch, pressure, lat, lon, channel] -> the same shape."""
        frame = roll_to_window_frame(x, self.geometry)
        return roll_from_window_frame(self.attend_in_window_frame(frame), self.geometry)

    def attend_in_window_frame(self, x: jnp.ndarray) -> jnp.ndarray:
        """Attention on tokens already rolled by :func:`roll_to_window_frame`; same frame out."""
        geometry = self.geometry
        head_dim = x.shape[-1] // self.heads
        qkv = self.qkv(x)  # [batch, pressure, lat, lon, 3 * channel]
        boxes = []
        for (query, key, value), group in zip(
            partition_qkv(qkv, geometry, self.heads), geometry.groups
        ):
            # each [batch, p win, lat win, lon win, head, token, head_dim]
            logits = jnp.einsum("...qd,...kd->...qk", query * head_dim**-0.5, key)
            # Softmax in float32 whatever the compute dtype.
            logits = logits.astype(jnp.float32) + self.masked_bias(group)
            # Softmax with the normalisation applied to the [token, head_dim] output rather
            # than to the [token, token] weights: fewer divisions, forward and backward.
            logits = logits - jax.lax.stop_gradient(logits.max(axis=-1, keepdims=True))
            weights = jnp.exp(logits)
            normaliser = weights.sum(axis=-1, keepdims=True)
            windows = jnp.einsum("...qk,...kd->...qd", weights.astype(value.dtype), value)
            windows = windows / normaliser.astype(value.dtype)
            boxes.append(_uncut_windows(windows, group))  # [batch, pressure, lat, lon, channel]
        return self.proj(join_groups(boxes, geometry))
