"""3D window attention with shifted windows and the Earth-specific positional bias.

Tokens are cut into windows with one roll of the real tokens, then, per window
group (see :mod:`stmodel.model.window_geometry`), a slice, a reshape and one
transpose: no gathers, and no padded tokens. The bias indices and edge masks
are static constants of the compiled program.

Two ways compute the attention of a window group, chosen by ``ModelConfig.attention``:

* ``"tuned"``: written out (logits, float32 softmax normalised on the output, values),
  the layout and operations that XLA:CPU runs fastest; the CPU default.
* ``"fused"``: :func:`jax.nn.dot_product_attention`, the windows folded into its batch
  axis and the (pressure, lat) windows into its head axis, so that the Earth-specific bias
  is one ``[1, window x head, query, key]`` array broadcast over batch and longitude windows
  (never copied per window) and accelerators can use a fused kernel (cuDNN's on CUDA GPUs
  in bfloat16, see :func:`fused_implementation`); the GPU and TPU default.

``"auto"`` picks one from ``jax.default_backend()`` when the model is traced.
"""

from __future__ import annotations

import functools
import logging

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from stmodel.model.earth_position_bias import EarthPositionBias
from stmodel.model.precision import DtypePolicy
from stmodel.model.window_geometry import MASKED_LOGIT, WindowGeometry, WindowGroup

logger = logging.getLogger(__name__)

dense_init = nnx.initializers.truncated_normal(stddev=0.02)

ATTENTION_PATHS = ("auto", "tuned", "fused")


def attention_path(attention: str) -> str:
    """'tuned' or 'fused': the path ``attention`` ('auto', 'tuned' or 'fused') takes on the
    default backend ('auto': tuned on CPU, fused elsewhere)."""
    if attention not in ATTENTION_PATHS:
        raise ValueError(f"attention must be one of {ATTENTION_PATHS}, got {attention!r}")
    if attention == "auto":
        return "tuned" if jax.default_backend() == "cpu" else "fused"
    return attention


def fused_implementation(dtype, head_dim: int, tokens: int) -> str | None:
    """The ``implementation`` of :func:`jax.nn.dot_product_attention` for one window group:
    'cudnn' where cuDNN's fused kernel takes the shapes (a CUDA GPU, bfloat16 or float16,
    head_dim a multiple of 8 up to 128, an even token count, which the bias gradient needs),
    else None (JAX's choice, XLA's attention in jax 0.10)."""
    if jax.default_backend() != "gpu" or jnp.dtype(dtype) not in (jnp.bfloat16, jnp.float16):
        return None
    if "cuda" not in getattr(jax.devices()[0].client, "platform_version", "").lower():
        return None
    if head_dim % 8 or head_dim > 128 or tokens % 2:
        return None
    return "cudnn"


@functools.cache
def _warn_once(message: str) -> None:
    logger.warning(message)


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


def _cut_sequences(box: jnp.ndarray, group: WindowGroup, heads: int) -> jnp.ndarray:
    """[batch, pressure, lat, lon, 3 * channel] box of one group
    -> [3, batch * lon win, token, p win * lat win * head, head_dim]: the
    [batch, seq, heads, head_dim] layout of jax.nn.dot_product_attention, one transpose."""
    batch = box.shape[0]
    n_pressure, n_lat, n_lon = group.window_counts
    w_pressure, w_lat, w_lon = group.window_shape
    head_dim = box.shape[-1] // (3 * heads)
    box = box.reshape(batch, n_pressure, w_pressure, n_lat, w_lat, n_lon, w_lon, 3, heads, head_dim)
    box = box.transpose(7, 0, 5, 2, 4, 6, 1, 3, 8, 9)
    # [3, batch, lon win, p, lat, lon, p win, lat win, head, head_dim]
    return box.reshape(
        3, batch * n_lon, group.tokens_per_window, n_pressure * n_lat * heads, head_dim
    )


def _uncut_sequences(sequences: jnp.ndarray, group: WindowGroup) -> jnp.ndarray:
    """[L..., batch * lon win, token, p win * lat win * head, head_dim] (any leading axes L)
    -> the group's box [batch, pressure, lat, lon, channel], channels ordered (L..., head,
    head_dim): the inverse of :func:`_cut_sequences` when L is the query/key/value axis."""
    lead = sequences.ndim - 4
    *leading, batch_lon, _, _, head_dim = sequences.shape
    n_pressure, n_lat, n_lon = group.window_counts
    w_pressure, w_lat, w_lon = group.window_shape
    batch = batch_lon // n_lon
    x = sequences.reshape(
        *leading, batch, n_lon, w_pressure, w_lat, w_lon, n_pressure, n_lat, -1, head_dim
    )
    # [L..., batch, lon win, p, lat, lon, p win, lat win, head, head_dim]
    axes = [lead + a for a in (0, 5, 2, 6, 3, 1, 4)] + list(range(lead)) + [lead + 7, lead + 8]
    x = x.transpose(axes)
    # [batch, p win, p, lat win, lat, lon win, lon, L..., head, head_dim]
    return x.reshape(batch, n_pressure * w_pressure, n_lat * w_lat, n_lon * w_lon, -1)


# How partition_qkv lays out each group's query, key and value: (cut, its inverse).
_LAYOUTS = {
    "windows": (_cut_windows, _uncut_windows),
    "sequences": (_cut_sequences, _uncut_sequences),
}


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3))
def partition_qkv(
    qkv: jnp.ndarray, geometry: WindowGeometry, heads: int, layout: str = "windows"
) -> list[tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]]:
    """[batch, pressure, lat, lon, 3 * channel] in the window frame -> per window group,
    query, key and value, each [batch, p win, lat win, lon win, head, token, head_dim]
    (layout 'windows') or [batch * lon win, token, p win * lat win * head, head_dim]
    (layout 'sequences', for jax.nn.dot_product_attention).

    The gradient is written out (the inverse transposes and one concatenation) because
    autodiff of the slices would pad each cotangent to the full grid and add them.
    """
    return _partition_qkv(qkv, geometry, heads, layout)


def _partition_qkv(qkv, geometry, heads, layout):
    cut, _ = _LAYOUTS[layout]
    partitions = []
    for group in geometry.groups:
        windows = cut(qkv[(slice(None), *group.slices)], group, heads)
        partitions.append((windows[0], windows[1], windows[2]))
    return partitions


def _partition_qkv_forward(qkv, geometry, heads, layout):
    return _partition_qkv(qkv, geometry, heads, layout), None


def _partition_qkv_backward(geometry, heads, layout, _, cotangents):
    _, uncut = _LAYOUTS[layout]
    boxes = [
        uncut(jnp.stack(grads), group)  # [batch, pressure, lat, lon, 3 * channel]
        for grads, group in zip(cotangents, geometry.groups)
    ]
    return (join_groups(boxes, geometry),)


partition_qkv.defvjp(_partition_qkv_forward, _partition_qkv_backward)


class EarthWindowAttention(nnx.Module):
    """Window attention of a [batch, pressure, lat, lon, channel] token grid.

    attention: 'auto', 'tuned' or 'fused' (see the module docstring); it selects code, not
    parameters, which are the same for all three. fused_implementation forces the
    ``implementation`` of jax.nn.dot_product_attention ('xla' or 'cudnn'; None: see
    :func:`fused_implementation`).
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        geometry: WindowGeometry,
        *,
        policy: DtypePolicy,
        rngs: nnx.Rngs,
        attention: str = "auto",
        fused_implementation: str | None = None,
    ):
        attention_path(attention)  # checks the name
        self.geometry = geometry
        self.heads = heads
        self.policy = policy
        self.code_path = attention  # "auto", "tuned" or "fused"
        self.fused_implementation = fused_implementation
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
        qkv = self.qkv(x)  # [batch, pressure, lat, lon, 3 * channel]
        if attention_path(self.code_path) == "fused":
            boxes = self._fused_attention(qkv)
        else:
            boxes = self._tuned_attention(qkv)
        # each [batch, pressure, lat, lon, channel]
        return self.proj(join_groups(boxes, self.geometry))

    def _tuned_attention(self, qkv: jnp.ndarray) -> list[jnp.ndarray]:
        """[batch, pressure, lat, lon, 3 * channel] -> per window group, the attention
        output [batch, pressure, lat, lon, channel] of the group's box, written out."""
        geometry = self.geometry
        head_dim = qkv.shape[-1] // (3 * self.heads)
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
        return boxes

    def fused_bias_and_mask(self, group: WindowGroup) -> tuple[jnp.ndarray, np.ndarray | None]:
        """The group's position bias [1, p win * lat win * head, query, key], float32, and
        its edge mask (True: may attend), bool [1, 1 or p win * lat win * head, query, key]
        or None: the bias and mask arguments of jax.nn.dot_product_attention, broadcast over
        its batch axis (batch * lon win)."""
        n_pressure, n_lat, _ = group.window_counts
        tokens = group.tokens_per_window
        bias = self.position_bias(group.bias_types, group.bias_rows).astype(jnp.float32)
        # [p win, lat win, head, query, key]
        bias = bias.reshape(1, n_pressure * n_lat * self.heads, tokens, tokens)
        allowed = group.allowed
        if allowed is None:
            return bias, None
        if allowed.ndim == 2:  # [query, key], the same in every window
            return bias, allowed[None, None]
        allowed = np.broadcast_to(
            allowed[:, :, None], (n_pressure, n_lat, self.heads, tokens, tokens)
        )  # [p win, lat win, head, query, key]
        return bias, allowed.reshape(1, n_pressure * n_lat * self.heads, tokens, tokens)

    def _fused_attention(self, qkv: jnp.ndarray) -> list[jnp.ndarray]:
        """As :meth:`_tuned_attention`, through jax.nn.dot_product_attention."""
        head_dim = qkv.shape[-1] // (3 * self.heads)
        boxes = []
        for (query, key, value), group in zip(
            partition_qkv(qkv, self.geometry, self.heads, "sequences"), self.geometry.groups
        ):
            # each [batch * lon win, token, p win * lat win * head, head_dim]
            implementation = self.fused_implementation
            if implementation is None:
                implementation = fused_implementation(
                    query.dtype, head_dim, group.tokens_per_window
                )
            bias, mask = self.fused_bias_and_mask(group)
            mask = None if mask is None else jnp.asarray(mask)
            attend = functools.partial(
                jax.nn.dot_product_attention, query, key, value, mask=mask, scale=head_dim**-0.5
            )
            if implementation == "cudnn":
                # cuDNN takes the bias in the input dtype; it computes the softmax in float32.
                try:
                    windows = attend(bias=bias.astype(query.dtype), implementation="cudnn")
                except (NotImplementedError, RuntimeError) as error:
                    if self.fused_implementation == "cudnn":
                        raise
                    _warn_once(f"cuDNN attention unavailable ({error}); using XLA's")
                    implementation = None
            if implementation != "cudnn":
                # XLA's: logits in float32 (the products accumulate in float32), plus the
                # float32 bias, softmax in float32, weights back to the compute dtype.
                windows = attend(bias=bias, implementation=implementation)
            # [batch * lon win, token, p win * lat win * head, head_dim]
            boxes.append(_uncut_sequences(windows, group))  # [batch, pressure, lat, lon, channel]
        return boxes
