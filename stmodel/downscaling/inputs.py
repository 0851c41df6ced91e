"""The network's inputs besides the coarse fields: time channels and static fine-grid fields."""

from __future__ import annotations

import numpy as np
import xarray as xr

from stmodel.data import canonical
from stmodel.data.layout import VariableLayout
from stmodel.data.pipeline import ENCODINGS, constant_fields

SECONDS_PER_DAY = 86400.0
DAYS_PER_YEAR = 365.2425


def time_channels(times: np.ndarray, lon: np.ndarray, n_lat: int) -> np.ndarray:
    """[batch, lat, lon, 4]: sin/cos of local solar time and of the fraction of the year.

    Local solar time (UTC + longitude / 15 h) rather than UTC, so the diurnal cycle
    of each grid point is one smooth function of its inputs.
    """
    times = np.asarray(times).astype("datetime64[s]")
    seconds = times.astype(np.int64).astype(np.float64)  # [batch] since 1970-01-01
    utc_day_fraction = (seconds % SECONDS_PER_DAY) / SECONDS_PER_DAY
    local = utc_day_fraction[:, None] + np.asarray(lon, np.float64)[None, :] / 360.0  # [batch, lon]
    year_start = times.astype("datetime64[Y]").astype("datetime64[s]")
    year_fraction = (times - year_start).astype(np.float64) / (DAYS_PER_YEAR * SECONDS_PER_DAY)
    n_times, n_lon = local.shape
    channels = [
        np.sin(2 * np.pi * local),
        np.cos(2 * np.pi * local),
        np.broadcast_to(np.sin(2 * np.pi * year_fraction)[:, None], local.shape),
        np.broadcast_to(np.cos(2 * np.pi * year_fraction)[:, None], local.shape),
    ]
    stacked = np.stack(channels, axis=-1)  # [batch, lon, 4]
    return np.broadcast_to(stacked[:, None], (n_times, n_lat, n_lon, 4)).astype(np.float32)


def static_names(fine: xr.Dataset) -> tuple[str, ...]:
    """Static fields of the fine grid: orography, land-sea mask, soil type where the data
    have them, then latitude/longitude encodings."""
    present = tuple(name for name in canonical.CONSTANT_VARIABLES if name in fine.data_vars)
    return present + ENCODINGS


def static_fields(fine: xr.Dataset, layout: VariableLayout) -> np.ndarray:
    """[lat, lon, static] on the fine grid (standardised again inside the model)."""
    return constant_fields(fine, layout)
