"""Validation scores in physical units: latitude-weighted RMSE of key fields."""

from __future__ import annotations

import numpy as np

from stmodel.data.layout import VariableLayout
from stmodel.evaluation.area_weights import area_weighted_mse

# (variable, level or None): the fields every validation reports when present.
KEY_FIELDS = (("geopotential", 500), ("temperature", 850), ("u_component_of_wind", 850))


def key_channels(layout: VariableLayout) -> dict[str, tuple[str, int, int | None]]:
    """name -> ("upper" | "surface", variable index, level index) for reported fields."""
    channels = {}
    for variable, level in KEY_FIELDS:
        if variable in layout.upper_air and level in layout.levels:
            channels[f"{variable}_{level}"] = (
                "upper",
                layout.upper_air.index(variable),
                layout.levels.index(level),
            )
    for index, variable in enumerate(layout.surface):
        channels[variable] = ("surface", index, None)
    return channels


class RmseAccumulator:
    """Sums of latitude-weighted squared errors per field; RMSE = sqrt(mean) at the end."""

    def __init__(self, layout: VariableLayout, lat_weights: np.ndarray):
        """lat_weights [lat]: :func:`stmodel.evaluation.area_weights.area_weights` of the grid."""
        self.channels = key_channels(layout)
        self.lat_weights = np.asarray(lat_weights, np.float64)
        self.sums: dict[str, float] = {}
        self.count = 0

    def add(self, error_upper: np.ndarray, error_surface: np.ndarray) -> None:
        """error_upper [batch, level, lat, lon, var], error_surface [batch, lat, lon, var]."""
        for name, (kind, var, level) in self.channels.items():
            field = (
                error_upper[:, level, :, :, var] if kind == "upper" else error_surface[:, :, :, var]
            )  # [batch, lat, lon]
            mse = area_weighted_mse(field, self.lat_weights, lat_axis=1)  # [batch]
            self.sums[name] = self.sums.get(name, 0.0) + float(mse.sum())
        self.count += error_upper.shape[0]

    def rmse(self, prefix: str = "rmse_") -> dict[str, float]:
        return {
            f"{prefix}{name}": float(np.sqrt(total / max(self.count, 1)))
            for name, total in self.sums.items()
        }
