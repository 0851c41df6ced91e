"""Array layout shared by the sample pipeline, the model and its wrappers.

Inside the model everything is plain arrays, channels last:

* upper-air state  ``[batch, level, lat, lon, upper_var]``
* surface state    ``[batch, lat, lon, surface_var]``
* constant fields  ``[lat, lon, constant]`` (the same for every sample)

with levels in the order of :attr:`VariableLayout.levels` (hPa ascending,
as in the canonical form) and latitude ascending.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np


@dataclasses.dataclass(frozen=True)
class VariableLayout:
    """Which canonical variables fill which channel, in order."""

    upper_air: tuple[str, ...]
    levels: tuple[int, ...]
    surface: tuple[str, ...]
    constants: tuple[str, ...]

    def __post_init__(self):
        if list(self.levels) != sorted(self.levels):
            raise ValueError(f"levels must be ascending hPa, got {self.levels}")

    def to_dict(self) -> dict:
        return {k: list(v) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> VariableLayout:
        return cls(**{k: tuple(v) for k, v in d.items()})


class Batch(NamedTuple):
    """One batch of training examples (numpy or jax arrays)."""

    inputs_upper: np.ndarray  # [batch, level, lat, lon, upper_var]
    inputs_surface: np.ndarray  # [batch, lat, lon, surface_var]
    targets_upper: np.ndarray  # [batch, step, level, lat, lon, upper_var]; step k is t + (k+1) dt
    targets_surface: np.ndarray  # [batch, step, lat, lon, surface_var]
    constants: np.ndarray  # [lat, lon, constant]
    input_time: np.ndarray  # [batch] int64 seconds since 1970-01-01 UTC


@dataclasses.dataclass(frozen=True)
class NormalisationStats:
    """Per-channel statistics in the layout above (physical units)."""

    upper_mean: np.ndarray  # [level, upper_var]
    upper_std: np.ndarray  # [level, upper_var]
    upper_diff_std: np.ndarray  # [level, upper_var]: std of x(t + dt) - x(t)
    surface_mean: np.ndarray  # [surface_var]
    surface_std: np.ndarray  # [surface_var]
    surface_diff_std: np.ndarray  # [surface_var]
