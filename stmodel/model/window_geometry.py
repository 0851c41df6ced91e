"""How a (pressure, lat, lon) token grid is cut into 3D attention windows.

Everything here is static (numpy, computed once per shape and cached), so the
window layout, bias indices and masks enter the compiled program as constants.

Conventions, per axis (they define the windows; Pangu-Weather's published code):

* pressure and latitude are not periodic. The grid is zero-padded to a whole
  number of windows (half the padding on each side), and a shifted block rolls
  the padded grid by half a window; tokens that the roll carried across the
  edge must not attend to the tokens they now share a window with.
* longitude is periodic. A shifted block rolls the *real* tokens around the
  circle (so the wrap connects the last and first longitudes), and only then is
  the axis padded at its end to a whole number of windows.
* padded tokens are never attended to, so they cannot change the result for
  real tokens.

Padded tokens therefore never need to exist. The attention runs on real tokens
only: after one roll of the real tokens (:attr:`WindowGeometry.real_roll`) the
real tokens of every window are contiguous along each axis. Along an axis,
consecutive windows that hold the same number of real tokens form an
:class:`AxisRun`; the product of one run per axis is a :class:`WindowGroup`, a
box of tokens cut into equal windows by one reshape. At the PyTorch reference's
configuration (token grids 8 x 8 x 16 and 8 x 4 x 8, windows 2 x 6 x 12) this
skips 69-80 % of the attention products of the padded windows.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math

import numpy as np

# Added to the logits of masked (query, key) pairs (tokens on the two sides of an edge
# that a shifted window joins). Large enough that exp() of it is exactly 0 in float32;
# every query may attend at least to itself, so no softmax row is all masked.
MASKED_LOGIT = -1.0e9


def symmetric_padding(length: int, multiple: int) -> tuple[int, int]:
    """(before, after) padding that brings length to a multiple, split as evenly as possible."""
    total = -length % multiple
    return total // 2, total - total // 2


@dataclasses.dataclass(frozen=True, eq=False)
class AxisRun:
    """Consecutive windows along one axis that hold the same number of real tokens.

    Token indices are those of the real-rolled frame. Arrays are [window, token]:
    each token's position inside its (padded) window, and its side of the edge
    (True for tokens a shifted roll carried across the pressure or latitude edge).
    """

    start: int
    window_index: np.ndarray  # [window] index of the window along the axis, padding included
    position: np.ndarray  # [window, token] position in the padded window
    wrapped: np.ndarray  # [window, token]

    @property
    def n_windows(self) -> int:
        return self.position.shape[0]

    @property
    def length(self) -> int:
        return self.position.shape[1]

    @property
    def stop(self) -> int:
        return self.start + self.n_windows * self.length


@dataclasses.dataclass(frozen=True, eq=False)
class WindowGroup:
    """A box of real tokens cut into equal windows: one run per axis (pressure, lat, lon).

    ``bias_types`` [p window, lat window] is the window type (position-bias table) of each
    window; ``bias_rows`` the table row of each (query, key) pair and ``allowed`` whether
    the pair may attend (None: all may), both [query, key] when all windows agree, else
    [p window, lat window, query, key] with length 1 along a window axis where they agree.
    Tokens are numbered (pressure, lat, lon) row-major inside a window.
    """

    runs: tuple[AxisRun, AxisRun, AxisRun]
    bias_types: np.ndarray
    bias_rows: np.ndarray
    allowed: np.ndarray | None

    @property
    def window_counts(self) -> tuple[int, int, int]:
        return tuple(run.n_windows for run in self.runs)

    @property
    def window_shape(self) -> tuple[int, int, int]:
        return tuple(run.length for run in self.runs)

    @property
    def tokens_per_window(self) -> int:
        return math.prod(self.window_shape)

    @property
    def slices(self) -> tuple[slice, slice, slice]:
        return tuple(slice(run.start, run.stop) for run in self.runs)


@dataclasses.dataclass(frozen=True)
class WindowGeometry:
    token_grid: tuple[int, int, int]  # real tokens (pressure, lat, lon)
    window: tuple[int, int, int]  # tokens per window (pressure, lat, lon)
    shifted: bool

    @property
    def padding(self) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
        """(before, after) padding of the pressure, lat and lon axes."""
        pressure, lat, lon = self.token_grid
        return (
            symmetric_padding(pressure, self.window[0]),
            symmetric_padding(lat, self.window[1]),
            (0, -lon % self.window[2]),
        )

    @property
    def padded_grid(self) -> tuple[int, int, int]:
        return tuple(n + sum(p) for n, p in zip(self.token_grid, self.padding))

    @property
    def shift(self) -> tuple[int, int, int]:
        """Roll of each axis in a shifted block: half a window."""
        return tuple(w // 2 for w in self.window) if self.shifted else (0, 0, 0)

    @property
    def real_roll(self) -> tuple[int, int, int]:
        """Roll of the real tokens (towards lower indices) after which the real tokens of
        every window are contiguous, in window order.

        Pad-then-roll along pressure or latitude moves the first ``shift - before`` real
        tokens to the end, behind the padding; longitude rolls the real tokens by the shift.
        The roll commutes with every per-token layer, so a shifted block rolls its input
        once and its output back once.
        """
        if not self.shifted:
            return (0, 0, 0)
        (p_before, _), (l_before, _), _ = self.padding
        s_pressure, s_lat, s_lon = self.shift
        return (max(s_pressure - p_before, 0), max(s_lat - l_before, 0), s_lon % self.token_grid[2])

    @property
    def window_counts(self) -> tuple[int, int, int]:
        """Windows along each axis, padding included (the windows of the definition)."""
        return tuple(n // w for n, w in zip(self.padded_grid, self.window))

    @property
    def tokens_per_window(self) -> int:
        return math.prod(self.window)

    @property
    def n_window_types(self) -> int:
        """Windows that get their own position bias: one per (pressure, lat) window."""
        return self.window_counts[0] * self.window_counts[1]

    @property
    def groups(self) -> tuple[WindowGroup, ...]:
        """The window groups, pressure-major, that tile the real-rolled token grid."""
        return _window_groups(self)

    @property
    def run_counts(self) -> tuple[int, int, int]:
        """Axis runs along pressure, lat and lon: the groups are their product."""
        return tuple(len(_axis_runs(self, axis)) for axis in range(3))

    def attention_pairs(self) -> int:
        """(query, key) pairs computed per sample: sum over windows of real tokens squared."""
        return sum(math.prod(g.window_counts) * g.tokens_per_window**2 for g in self.groups)


@functools.cache
def _axis_runs(geometry: WindowGeometry, axis: int) -> tuple[AxisRun, ...]:
    length, window = geometry.token_grid[axis], geometry.window[axis]
    padded, before = geometry.padded_grid[axis], geometry.padding[axis][0]
    shift, roll = geometry.shift[axis], geometry.real_roll[axis]
    original = (np.arange(length) + roll) % length  # real-rolled frame -> token index
    if axis == 2:  # longitude: the real tokens turn around the circle, padding at the end
        rolled = (original - shift) % length
        wrapped = np.zeros(length, bool)
    else:
        rolled = (original + before - shift) % padded  # position in the padded, rolled axis
        wrapped = original + before < shift
    if np.any(np.diff(rolled) <= 0):
        raise AssertionError(f"real tokens not in window order along axis {axis}: {rolled}")
    window_of, position = np.divmod(rolled, window)
    starts = np.flatnonzero(np.diff(window_of, prepend=-1))  # first token of each window
    lengths = np.diff(starts, append=length)
    runs = []
    for _, members in itertools.groupby(range(len(starts)), key=lambda w: lengths[w]):
        members = list(members)
        first, run_length = starts[members[0]], lengths[members[0]]
        tokens = first + np.arange(len(members) * run_length).reshape(len(members), run_length)
        runs.append(
            AxisRun(
                start=int(first),
                window_index=window_of[tokens[:, 0]],
                position=position[tokens],
                wrapped=wrapped[tokens],
            )
        )
    return tuple(runs)


def _per_window_tokens(pressure: np.ndarray, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Per-axis values [p window, p token], [lat window, lat token], [lon token] -> the value
    triple of every token of every (p, lat) window: [p window, lat window, token, 3]."""
    n_p, l_p = pressure.shape
    n_l, l_l = lat.shape
    l_o = lon.shape[0]
    shape = (n_p, n_l, l_p, l_l, l_o)
    values = np.stack(
        [
            np.broadcast_to(pressure[:, None, :, None, None], shape),
            np.broadcast_to(lat[None, :, None, :, None], shape),
            np.broadcast_to(lon[None, None, None, None, :], shape),
        ],
        axis=-1,
    )
    return values.reshape(n_p, n_l, l_p * l_l * l_o, 3)


def _share_across_windows(array: np.ndarray) -> np.ndarray:
    """[p window, lat window, q, k] -> the window axes along which all values agree cut to
    length 1 (static constants stay small); [q, k] when both are."""
    for axis in (0, 1):
        first = array.take([0], axis=axis)
        if (array == first).all():
            array = first
    return array[0, 0] if array.shape[:2] == (1, 1) else array


@functools.cache
def _window_groups(geometry: WindowGeometry) -> tuple[WindowGroup, ...]:
    w_pressure, w_lat, w_lon = geometry.window
    n_lat_windows = geometry.window_counts[1]
    groups = []
    for runs in itertools.product(*(_axis_runs(geometry, axis) for axis in range(3))):
        p_run, l_run, o_run = runs
        # Longitude enters the bias only as the offset between query and key, the same in
        # every window of a run (real longitudes are contiguous from the window's start).
        lon_position = o_run.position[0]
        position = _per_window_tokens(p_run.position, l_run.position, lon_position)
        p, l, o = (position[..., i] for i in range(3))  # each [p window, lat window, token]
        rows = (
            (p[..., :, None] + w_pressure * p[..., None, :]) * w_lat**2 * (2 * w_lon - 1)
            + (l[..., :, None] + w_lat * l[..., None, :]) * (2 * w_lon - 1)
            + (o[..., :, None] - o[..., None, :] + w_lon - 1)
        )
        wrapped = _per_window_tokens(p_run.wrapped, l_run.wrapped, np.zeros(o_run.length, bool))
        same_side = (wrapped[..., None, :, :] == wrapped[..., :, None, :]).all(axis=-1)
        allowed = None if same_side.all() else _share_across_windows(same_side)
        types = p_run.window_index[:, None] * n_lat_windows + l_run.window_index[None, :]
        groups.append(
            WindowGroup(
                runs=runs,
                bias_types=types.astype(np.int32),
                bias_rows=_share_across_windows(rows).astype(np.int32),
                allowed=allowed,
            )
        )
    for group in groups:
        for array in (group.bias_types, group.bias_rows, group.allowed):
            if array is not None:
                array.flags.writeable = False
    return tuple(groups)
