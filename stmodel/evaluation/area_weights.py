"""Latitude weights proportional to grid-cell area (WeatherBench 2 convention)."""

from __future__ import annotations

import numpy as np
import xarray as xr


def latitude_cell_edges(latitude: np.ndarray) -> np.ndarray:
    """Edges (degrees) of the cells around ascending grid latitudes, one more than rows.

    Inner edges lie halfway between neighbouring rows. An outer edge is the
    pole when no further row would fit before it (every global grid: regular,
    Gaussian, with or without pole rows), which is WeatherBench 2's +/-90;
    otherwise (a regional grid) it is half a spacing beyond the last row.
    """
    latitude = np.asarray(latitude, dtype=np.float64)
    if latitude.ndim != 1 or latitude.size == 0:
        raise ValueError(f"latitude must be a non-empty 1-D array, got shape {latitude.shape}")
    if latitude.size > 1 and not np.all(np.diff(latitude) > 0):
        raise ValueError("latitude must be strictly ascending")
    if latitude[0] < -90 or latitude[-1] > 90:
        raise ValueError(f"latitude must lie in [-90, 90], got {latitude[0]}..{latitude[-1]}")
    if latitude.size == 1:
        # One row: no spacing to go by, so the row stands for the whole sphere.
        return np.array([-90.0, 90.0])
    inner = (latitude[:-1] + latitude[1:]) / 2
    first_spacing = latitude[1] - latitude[0]
    last_spacing = latitude[-1] - latitude[-2]
    south = -90.0 if latitude[0] - first_spacing < -90 else latitude[0] - first_spacing / 2
    north = 90.0 if latitude[-1] + last_spacing > 90 else latitude[-1] + last_spacing / 2
    return np.concatenate([[south], inner, [north]])


def area_weights(latitude: xr.DataArray) -> xr.DataArray:
    """Weight of each grid row, sin(upper edge) - sin(lower edge), normalised to mean 1.

    ``latitude`` is the ascending latitude coordinate (degrees); the result has
    its dimension and coordinate, so it broadcasts against any field on the grid.
    """
    edges = np.deg2rad(latitude_cell_edges(latitude.values))
    weights = np.sin(edges[1:]) - np.sin(edges[:-1])
    weights = weights / weights.mean()
    return xr.DataArray(
        weights, dims=latitude.dims, coords={latitude.dims[0]: latitude.values}, name="area_weight"
    )
