"""The Earth-specific positional bias of Pangu-Weather (replaces Swin's relative bias).

One learnable table per window type (one type per (pressure window, latitude
window) pair), indexed by the absolute positions of query and key inside the
window in pressure and latitude, and by their relative offset in longitude. The
bias is shared by all windows along longitude, which makes the network
equivariant to longitude shifts by whole windows.

The table keeps the layout of the published implementations,
``[(2 w_lon - 1) * w_lat**2 * w_pressure**2, window type, head]`` with row
``(p_q + w_p p_k) * w_lat**2 (2 w_lon - 1) + (l_q + w_lat l_k) (2 w_lon - 1) + (o_q - o_k + w_lon - 1)``.
It is expanded to ``[window type, head, query, key]`` by one gather with a static
index (computed once with numpy), from the table transposed to
``[window type, head, row]`` so that the gather writes contiguous rows.
"""

from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np
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
        table = self.table[...].transpose(1, 2, 0)  # [type, head, row]
        return jnp.take(table, bias_row_index(self.window), axis=2)


@functools.cache
def bias_row_index(window: tuple[int, int, int]) -> np.ndarray:
    """Table row of each (query, key) pair of a window: int32 [query token, key token].

    Tokens are numbered (pressure, lat, lon) row-major inside the window.
    """
    w_pressure, w_lat, w_lon = window
    p_q, l_q, o_q, p_k, l_k, o_k = np.meshgrid(
        *[np.arange(n) for n in (w_pressure, w_lat, w_lon, w_pressure, w_lat, w_lon)], indexing="ij")
    row = ((p_q + w_pressure * p_k) * w_lat ** 2 * (2 * w_lon - 1)
           + (l_q + w_lat * l_k) * (2 * w_lon - 1)
           + (o_q - o_k + w_lon - 1))
    tokens = w_pressure * w_lat * w_lon
    row = row.reshape(tokens, tokens).astype(np.int32)
    row.flags.writeable = False
    return row
