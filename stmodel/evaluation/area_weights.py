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


def area_weighted_mean(field: np.ndarray, weights: np.ndarray, lat_axis: int = -2) -> np.ndarray:
    """Mean over the grid (axes ``lat_axis`` and the longitude axis after it) of ``field``
    weighted by ``weights`` [lat] (mean 1, from :func:`area_weights`)."""
    lat_axis = lat_axis % field.ndim
    shape = [1] * field.ndim
    shape[lat_axis] = -1
    return (field * np.reshape(weights, shape)).mean(axis=(lat_axis, lat_axis + 1))


def area_weighted_mse(error: np.ndarray, weights: np.ndarray, lat_axis: int = -2) -> np.ndarray:
    """Area-weighted mean squared error over the grid, in float64, per remaining index."""
    return area_weighted_mean(np.asarray(error, np.float64) ** 2, weights, lat_axis)


def area_weighted_rmse(
    error: np.ndarray, weights: np.ndarray, lat_axis: int = -2, *, skip_nan: bool = False
) -> float:
    """RMSE of ``error`` [..., lat, lon, ...] with ``weights`` [lat]: the root of the mean over
    every other axis (init times) of the area-weighted MSE, root last (WeatherBench 2).

    With ``skip_nan``, NaN cells are left out (a map with missing points) instead of
    making the result NaN.
    """
    if not skip_nan:
        return float(np.sqrt(area_weighted_mse(error, weights, lat_axis).mean()))
    squared = np.asarray(error, np.float64) ** 2
    shape = [1] * squared.ndim
    shape[lat_axis % squared.ndim] = -1
    cell_weights = np.broadcast_to(np.reshape(weights, shape), squared.shape)
    finite = np.isfinite(squared)
    return float(
        np.sqrt(np.sum(cell_weights[finite] * squared[finite]) / np.sum(cell_weights[finite]))
    )
