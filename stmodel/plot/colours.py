"""Colour maps and limits: perceptual maps for fields, diverging maps centred on zero for errors."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import matplotlib.colors as mcolors
import numpy as np

from stmodel.errors import UserError

# Sequential maps whose lightness rises monotonically: the perceptually uniform
# viridis family, ColorBrewer YlGnBu for moisture and wind speed; viridis otherwise.
SEQUENTIAL_CMAPS = {
    "temperature": "plasma",
    "2m_temperature": "plasma",
    "lowest_model_level_temperature": "plasma",
    "geopotential": "viridis",
    "geopotential_at_surface": "cividis",
    "specific_humidity": "YlGnBu",
    "relative_humidity": "YlGnBu",
    "total_precipitation": "YlGnBu",
    "wind_speed": "YlGnBu",
    "10m_wind_speed": "YlGnBu",
    "mean_sea_level_pressure": "viridis",
    "surface_pressure": "viridis",
}
DEFAULT_CMAP = "viridis"
# Signed quantities whose zero means something: shown diverging about zero.
SIGNED_VARIABLES = (
    "u_component_of_wind",
    "v_component_of_wind",
    "10m_u_component_of_wind",
    "10m_v_component_of_wind",
    "vertical_velocity",
    "lowest_model_level_u_component_of_wind",
    "lowest_model_level_v_component_of_wind",
)
SIGNED_CMAP = "PuOr_r"
ERROR_CMAP = "RdBu_r"
# Errors are scaled to this percentile of |error| so that a few extreme cells do not
# wash the map out; the colour bar then shows arrows for the clipped tails.
ERROR_PERCENTILE = 99.5


@dataclasses.dataclass(frozen=True)
class ColourScale:
    """What a map needs to colour a field consistently across panels."""

    cmap: str
    norm: mcolors.Normalize
    extend: str  # colour-bar arrows: "neither", "min", "max" or "both"


def _finite(values: Sequence[np.ndarray]) -> np.ndarray:
    finite = np.concatenate([np.asarray(v, np.float64).ravel() for v in values])
    finite = finite[np.isfinite(finite)]
    if not finite.size:
        raise UserError(
            "cannot choose colour limits: every value of the field is NaN or "
            "infinite (is the selection or the extent empty of data?)"
        )
    return finite


def _extend(values: np.ndarray, vmin: float, vmax: float) -> str:
    below, above = values.min() < vmin, values.max() > vmax
    return {
        (False, False): "neither",
        (True, False): "min",
        (False, True): "max",
        (True, True): "both",
    }[(below, above)]


def symmetric_scale(
    values: Sequence[np.ndarray],
    *,
    limit: float | None = None,
    cmap: str | None = None,
    percentile: float = ERROR_PERCENTILE,
) -> ColourScale:
    """Limits -m .. +m centred on zero; m from ``limit`` or the percentile of |values|."""
    finite = _finite(values)
    if limit is None:
        limit = float(np.percentile(np.abs(finite), percentile))
    limit = limit if limit > 0 else 1.0  # an all-zero field (a perfect forecast) still draws
    return ColourScale(
        cmap or ERROR_CMAP, mcolors.Normalize(-limit, limit), _extend(finite, -limit, limit)
    )


def error_scale(
    errors: Sequence[np.ndarray],
    *,
    vmin: float | None = None,
    vmax: float | None = None,
    cmap: str | None = None,
) -> ColourScale:
    """Diverging scale for forecast - truth, white at zero.

    Symmetric limits by default; limits given that are not symmetric keep zero
    at the centre of the colour map (TwoSlopeNorm).
    """
    if vmin is None and vmax is None:
        return symmetric_scale(errors, cmap=cmap)
    if vmin is None or vmax is None:
        limit = abs(vmax if vmin is None else vmin)
        return symmetric_scale(errors, limit=limit, cmap=cmap)
    if not vmin < 0 < vmax:
        raise ValueError(f"error colour limits must straddle zero, got vmin={vmin}, vmax={vmax}")
    finite = _finite(errors)
    return ColourScale(
        cmap or ERROR_CMAP, mcolors.TwoSlopeNorm(0.0, vmin, vmax), _extend(finite, vmin, vmax)
    )


def field_scale(
    values: Sequence[np.ndarray],
    variable: str | None = None,
    *,
    vmin: float | None = None,
    vmax: float | None = None,
    cmap: str | None = None,
) -> ColourScale:
    """Scale shared by fields of one variable (truth and forecast panels use one scale).

    Signed winds get a diverging map about zero; other fields a perceptual
    sequential map spanning the data.
    """
    finite = _finite(values)
    if (
        variable in SIGNED_VARIABLES
        and vmin is None
        and vmax is None
        and finite.min() < 0 < finite.max()
    ):
        return symmetric_scale(values, limit=float(np.abs(finite).max()), cmap=cmap or SIGNED_CMAP)
    vmin = float(finite.min()) if vmin is None else vmin
    vmax = float(finite.max()) if vmax is None else vmax
    if vmin == vmax:  # a constant field
        vmin, vmax = vmin - 0.5, vmax + 0.5
    return ColourScale(
        cmap or SEQUENTIAL_CMAPS.get(variable or "", DEFAULT_CMAP),
        mcolors.Normalize(vmin, vmax),
        _extend(finite, vmin, vmax),
    )
