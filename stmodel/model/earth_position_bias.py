"""The Earth-specific positional bias of Pangu-Weather (replaces Swin's relative bias).

One learnable table per window type (one type per (pressure window, latitude
window) pair), indexed by the absolute positions of query and key inside the
window in pressure and latitude, and by their relative offset in longitude. The
bias is shared by all windows along longitude, which makes the network
equivariant to longitude shifts by whole windows.

The table keeps the layout of the published implementations,
``[(2 w_lon - 1) * w_lat**2 * w_pressure**2, window type, head]`` with row
``(p_q + w_p p_k) * w_lat**2 (2 w_lon - 1) + (l_q + w_lat l_k) (2 w_lon - 1) + (o_q - o_k + w_lon - 1)``.
It is expanded to ``[window type, head, query, key]`` with reshapes and static
slices rather than a gather: XLA turns the gradient of a gather into a scatter,
which is slow on CPU; the gradient of slices is cheap padding and adds.
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import nnx


class EarthPositionBias(nnx.Module):
    def __init__(self, window: tuple[int, int, int], n_window_types: int, heads: int, *,
                 param_dtype=jnp.float32, rngs: nnx.Rngs):
        self.window = tuple(window)
        w_pressure, w_lat, w_lon = self.window
        rows = (2 * w_lon - 1) * w_lat ** 2 * w_pressure ** 2
        init = nnx.initializers.truncated_normal(stddev=0.02)
        self.table = nnx.Param(init(rngs.params(), (rows, n_window_types, heads), param_dtype))

    def __call__(self) -> jnp.ndarray:
        """The bias of every window type: [window type, head, query token, key token]."""
        w_pressure, w_lat, w_lon = self.window
        table = self.table[...]
        _, n_types, heads = table.shape
        table = table.reshape(w_pressure, w_pressure, w_lat, w_lat, 2 * w_lon - 1, n_types, heads)
        # [p key, p query, lat key, lat query, lon offset, type, head]
        flipped = table[:, :, :, :, ::-1]  # lon axis now indexed by o_k - o_q + w_lon - 1
        expanded = jnp.stack(
            [flipped[:, :, :, :, w_lon - 1 - o_q:2 * w_lon - 1 - o_q] for o_q in range(w_lon)],
            axis=4)
        # [p key, p query, lat key, lat query, lon query, lon key, type, head]
        expanded = expanded.transpose(6, 7, 1, 3, 4, 0, 2, 5)
        # [type, head, p query, lat query, lon query, p key, lat key, lon key]
        tokens = w_pressure * w_lat * w_lon
        return expanded.reshape(n_types, heads, tokens, tokens)
