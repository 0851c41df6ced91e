"""The Earth-specific positional bias of Pangu-Weather (replaces Swin's relative bias).

One learnable table per window type (one type per (pressure window, latitude
window) pair), indexed by the absolute positions of query and key inside the
window in pressure and latitude, and by their relative offset in longitude. The
bias is shared by all windows along longitude, which makes the network
equivariant to longitude shifts by whole windows.

The table keeps the layout of the published implementations,
``[(2 w_lon - 1) * w_lat**2 * w_pressure**2, window type, head]`` with row
``(p_q + w_p p_k) * w_lat**2 (2 w_lon - 1) + (l_q + w_lat l_k) (2 w_lon - 1)
+ (o_q - o_k + w_lon - 1)``.
Window attention asks for the bias of a group of windows (see
:class:`stmodel.model.window_geometry.WindowGroup`): the group's tables are
selected by window type, then expanded to ``[window, head, query, key]`` by a
gather with a static row index (computed once with numpy), from the table
transposed to ``[window type, head, row]`` so that the gather writes contiguous
rows.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from flax import nnx


class EarthPositionBias(nnx.Module):
    def __init__(
        self,
        window: tuple[int, int, int],
        n_window_types: int,
        heads: int,
        *,
        param_dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        w_pressure, w_lat, w_lon = window
        rows = (2 * w_lon - 1) * w_lat**2 * w_pressure**2
        init = nnx.initializers.truncated_normal(stddev=0.02)
        self.table = nnx.Param(init(rngs.params(), (rows, n_window_types, heads), param_dtype))

    def __call__(self, window_types: np.ndarray, rows: np.ndarray) -> jnp.ndarray:
        """The bias of a group of windows: [p window, lat window, head, query, key].

        window_types: int [p window, lat window], the table of each window;
        rows: int [query, key] shared by all windows, or [p window, lat window, query, key]
        (window axes of length 1 are broadcast).
        """
        n_pressure, n_lat = window_types.shape
        tokens = rows.shape[-1]
        table = self.table[...].transpose(1, 2, 0)  # [type, head, row]
        if not np.array_equal(window_types.ravel(), np.arange(table.shape[0])):
            table = jnp.take(table, window_types.ravel(), axis=0, mode="clip")
        # [window, head, row]
        if rows.ndim == 2:
            bias = jnp.take(table, rows, axis=2, mode="clip")  # [window, head, q, k]
        else:
            rows = np.broadcast_to(rows, (n_pressure, n_lat, tokens, tokens))
            rows = rows.reshape(n_pressure * n_lat, 1, tokens * tokens)
            bias = jnp.take_along_axis(table, rows, axis=2, mode="clip")
        return bias.reshape(n_pressure, n_lat, table.shape[1], tokens, tokens)
