"""How a (pressure, lat, lon) token grid is cut into 3D attention windows.

Everything here is static (numpy, computed once per shape and cached), so the
masks enter the compiled program as constants.

Conventions, per axis:

* pressure and latitude are not periodic. The grid is zero-padded to a whole
  number of windows (half the padding on each side), and a shifted block rolls
  the padded grid by half a window; tokens that the roll carried across the
  edge must not attend to the tokens they now share a window with.
* longitude is periodic. A shifted block rolls the *real* tokens around the
  circle (so the wrap connects the last and first longitudes), and only then is
  the axis padded at its end to a whole number of windows.
* padded tokens are never attended to (their keys are masked), so they cannot
  change the result for real tokens, whatever their values.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np

# Added to the logits of masked (query, key) pairs. Finite, so that a padded query
# whose whole window is masked gets a uniform (harmless, later discarded) softmax
# instead of NaN; large enough that exp() of it is exactly 0 in float32.
MASKED_LOGIT = -1.0e9


def symmetric_padding(length: int, multiple: int) -> tuple[int, int]:
    """(before, after) padding that brings length to a multiple, split as evenly as possible."""
    total = -length % multiple
    return total // 2, total - total // 2


@dataclasses.dataclass(frozen=True)
class WindowGeometry:
    token_grid: tuple[int, int, int]  # real tokens (pressure, lat, lon)
    window: tuple[int, int, int]      # tokens per window (pressure, lat, lon)
    shifted: bool

    @property
    def padding(self) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
        """(before, after) padding of the pressure, lat and lon axes."""
        pressure, lat, lon = self.token_grid
        return (symmetric_padding(pressure, self.window[0]),
                symmetric_padding(lat, self.window[1]),
                (0, -lon % self.window[2]))

    @property
    def padded_grid(self) -> tuple[int, int, int]:
        return tuple(n + sum(p) for n, p in zip(self.token_grid, self.padding))

    @property
    def shift(self) -> tuple[int, int, int]:
        """Roll of each axis in a shifted block: half a window."""
        return tuple(w // 2 for w in self.window) if self.shifted else (0, 0, 0)

    @property
    def real_roll(self) -> tuple[int, int, int]:
        """Roll of the real tokens (towards lower indices) that, followed by zero insertion
        (:attr:`zero_insertion`), gives the padded and rolled grid.

        Pad-then-roll along pressure or latitude moves the first ``shift - before`` real
        tokens to the end, behind the padding; longitude rolls the real tokens by the shift.
        Rolling the real tokens is cheaper than rolling the padded grid, and it commutes with
        every per-token layer, so a shifted block rolls its input once and its output back once.
        """
        if not self.shifted:
            return (0, 0, 0)
        (p_before, _), (l_before, _), _ = self.padding
        s_pressure, s_lat, s_lon = self.shift
        return (max(s_pressure - p_before, 0), max(s_lat - l_before, 0),
                s_lon % self.token_grid[2])

    @property
    def zero_insertion(self) -> tuple[tuple[int, int, int], ...]:
        """Per axis (zeros in front, insertion index, zeros inserted) taking the real-rolled
        tokens to the padded, rolled grid of the windows."""
        layout = []
        for axis in range(3):
            length, padded = self.token_grid[axis], self.padded_grid[axis]
            before = self.padding[axis][0]
            if axis == 2:  # longitude: padding always at the end
                layout.append((0, length, padded - length))
                continue
            front = max(before - self.shift[axis], 0)
            roll = self.real_roll[axis]
            layout.append((front, length - roll, padded - length - front))
        return tuple(layout)

    @property
    def window_counts(self) -> tuple[int, int, int]:
        return tuple(n // w for n, w in zip(self.padded_grid, self.window))

    @property
    def tokens_per_window(self) -> int:
        return math.prod(self.window)

    @property
    def n_window_types(self) -> int:
        """Windows that get their own position bias: one per (pressure, lat) window."""
        return self.window_counts[0] * self.window_counts[1]

    @property
    def longitude_is_padded(self) -> bool:
        return self.padding[2][1] > 0

    def pressure_latitude_allowed(self) -> np.ndarray:
        """Which keys each query may attend to: bool [pressure window, lat window, query, key].

        The same for every longitude window (padded longitudes are masked separately).
        """
        return _pressure_latitude_allowed(self)

    def longitude_key_allowed(self) -> np.ndarray:
        """Which keys are real longitudes: bool [lon window, key]."""
        return _longitude_key_allowed(self)


def _edge_axis_pairs(length: int, window: int, shift: int, before: int) -> np.ndarray:
    """Which (query, key) pairs may attend along a non-periodic axis: [window index, query, key].

    Positions are those of the rolled, padded axis. A key may be attended to if it is a
    real token and it lies on the same side of the edge as the query (the roll moved the
    first `shift` padded positions to the end of the axis).
    """
    padded = length + (-length % window)
    rolled = np.arange(padded)
    original = (rolled + shift) % padded          # position in the padded axis before the roll
    wrapped = rolled + shift >= padded            # carried across the edge by the roll
    real = (original >= before) & (original < before + length)
    wrapped = wrapped.reshape(-1, window)         # [window index, position in window]
    real = real.reshape(-1, window)
    return (wrapped[:, :, None] == wrapped[:, None, :]) & real[:, None, :]


@functools.cache
def _pressure_latitude_allowed(geometry: WindowGeometry) -> np.ndarray:
    (pressure, lat, _), (w_pressure, w_lat, w_lon) = geometry.token_grid, geometry.window
    pressure_pairs = _edge_axis_pairs(pressure, w_pressure, geometry.shift[0], geometry.padding[0][0])
    lat_pairs = _edge_axis_pairs(lat, w_lat, geometry.shift[1], geometry.padding[1][0])
    # [p window, l window, p query, l query, p key, l key], the same for every lon offset.
    allowed = pressure_pairs[:, None, :, None, :, None] & lat_pairs[None, :, None, :, None, :]
    allowed = np.broadcast_to(
        allowed[:, :, :, :, None, :, :, None],
        allowed.shape[:4] + (w_lon,) + allowed.shape[4:] + (w_lon,))
    n_pressure_windows, n_lat_windows = allowed.shape[:2]
    tokens = geometry.tokens_per_window
    allowed = allowed.reshape(n_pressure_windows, n_lat_windows, tokens, tokens)
    allowed.flags.writeable = False
    return allowed


@functools.cache
def _longitude_key_allowed(geometry: WindowGeometry) -> np.ndarray:
    lon = geometry.token_grid[2]
    w_pressure, w_lat, w_lon = geometry.window
    real = (np.arange(geometry.padded_grid[2]) < lon).reshape(-1, w_lon)  # [lon window, lon]
    real = np.broadcast_to(real[:, None, None, :], (real.shape[0], w_pressure, w_lat, w_lon))
    allowed = np.ascontiguousarray(real.reshape(real.shape[0], -1))
    allowed.flags.writeable = False
    return allowed
