"""Interpolation baselines against scipy on toy fields."""

import numpy as np
import pytest
import scipy.interpolate
import scipy.ndimage

from stmodel.downscaling.baselines import GridInterpolator, axis_matrix, is_periodic
from stmodel.errors import DataError


def _toy(n_lat=9, n_lon=13, seed=0):
    rng = np.random.default_rng(seed)
    lat = 30.0 + 2.0 * np.arange(n_lat)
    lon = -10.0 + 2.0 * np.arange(n_lon)
    field = rng.standard_normal((3, n_lat, n_lon)).astype(np.float32)  # [time, lat, lon]
    return lat, lon, field


@pytest.mark.parametrize("method, scipy_method", [("bilinear", "linear"), ("nearest", "nearest")])
def test_matches_scipy_regular_grid_interpolator_inside_the_grid(method, scipy_method):
    lat, lon, field = _toy()
    fine_lat = np.linspace(lat[0], lat[-1], 37)[1:-1] + 0.013  # avoid exact midpoints
    fine_lon = np.linspace(lon[0], lon[-1], 50)[1:-1] + 0.007
    mine = GridInterpolator.between(lat, lon, fine_lat, fine_lon, method)(field, lat_axis=1)
    points = np.stack(np.meshgrid(fine_lat, fine_lon, indexing="ij"), axis=-1)
    for t in range(field.shape[0]):
        reference = scipy.interpolate.RegularGridInterpolator(
            (lat, lon), field[t].astype(np.float64), method=scipy_method
        )(points)
        np.testing.assert_allclose(mine[t], reference, atol=2e-5)


def _cell_centred_fine_grid(lat, lon, factor):
    """The fine grid whose factor x factor blocks average to the coarse cells (2 deg -> 0.5)."""
    step = 2.0 / factor
    offset = (factor - 1) / 2 * step
    return (
        lat[0] - offset + step * np.arange(factor * lat.size),
        lon[0] - offset + step * np.arange(factor * lon.size),
    )


def test_bicubic_is_scipy_cubic_spline_with_half_sample_symmetric_edges():
    """The separable matrices equal scipy.ndimage.map_coordinates on the 2-D field, at the
    fine points' positions in coarse cells, everywhere including beyond the edge centres."""
    lat, lon, field = _toy()
    fine_lat, fine_lon = _cell_centred_fine_grid(lat, lon, 4)
    mine = GridInterpolator.between(lat, lon, fine_lat, fine_lon, "bicubic")(field, lat_axis=1)
    rows = (fine_lat - lat[0]) / 2.0
    columns = (fine_lon - lon[0]) / 2.0
    coordinates = np.stack(np.meshgrid(rows, columns, indexing="ij"))
    for t in range(field.shape[0]):
        reference = scipy.ndimage.map_coordinates(
            field[t].astype(np.float64), coordinates, order=3, mode="reflect"
        )
        np.testing.assert_allclose(mine[t], reference, atol=1e-5)


def test_bicubic_agrees_with_scipy_zoom_in_grid_mode():
    """scipy.ndimage.zoom with cell-centred coordinates (grid_mode) is the same resampling;
    it prefilters a padded copy, so agreement is close rather than exact."""
    lat, lon, field = _toy()
    fine_lat, fine_lon = _cell_centred_fine_grid(lat, lon, 4)
    mine = GridInterpolator.between(lat, lon, fine_lat, fine_lon, "bicubic")(field, lat_axis=1)
    reference = scipy.ndimage.zoom(
        field.astype(np.float64), (1, 4, 4), order=3, mode="reflect", grid_mode=True
    )
    np.testing.assert_allclose(mine, reference, atol=2e-3)


def test_bilinear_reproduces_a_linear_field_inside_the_grid():
    lat = np.arange(20.0, 60.0, 5.0)
    lon = np.arange(0.0, 50.0, 5.0)
    field = (2.0 * lat[:, None] - 0.5 * lon[None, :]).astype(np.float32)
    fine_lat = np.arange(30.0, 45.0, 1.25)
    fine_lon = np.arange(15.0, 30.0, 1.25)
    fine = GridInterpolator.between(lat, lon, fine_lat, fine_lon, "bilinear")(field, lat_axis=0)
    np.testing.assert_allclose(
        fine, 2.0 * fine_lat[:, None] - 0.5 * fine_lon[None, :], rtol=0, atol=1e-3
    )


def test_global_longitudes_wrap_across_zero():
    lon = np.arange(0.0, 360.0, 30.0)
    assert is_periodic(lon) and not is_periodic(lon[:-1])
    values = np.cos(np.deg2rad(lon))
    weights = axis_matrix(lon, np.array([-15.0, 345.0, 15.0]), 1, periodic=True)
    fine = weights @ values
    expected = (values[-1] + values[0]) / 2  # halfway between 330 and 0 (= 360)
    np.testing.assert_allclose(fine[:2], expected)
    np.testing.assert_allclose(fine[2], (values[0] + values[1]) / 2)


def test_frames_of_longitude_do_not_matter():
    lat, lon, field = _toy()
    fine_lat, fine_lon = lat[1:-1] + 0.7, lon[1:-1] + 0.3
    a = GridInterpolator.between(lat, lon, fine_lat, fine_lon, "bicubic")(field, 1)
    b = GridInterpolator.between(lat, lon, fine_lat, fine_lon % 360, "bicubic")(field, 1)
    c = GridInterpolator.between(lat, lon + 360, fine_lat, fine_lon, "bicubic")(field, 1)
    np.testing.assert_allclose(a, b, atol=1e-6)
    np.testing.assert_allclose(a, c, atol=1e-6)


def test_channels_last_layouts():
    lat, lon, field = _toy()
    interpolate = GridInterpolator.between(lat, lon, lat + 0.5, lon + 0.5, "bilinear")
    upper = np.stack([field, 2 * field], axis=-1)[:, None]  # [time, level, lat, lon, var]
    fine = interpolate.channels_last(upper)
    assert fine.shape == (3, 1, lat.size, lon.size, 2)
    np.testing.assert_allclose(fine[:, 0, ..., 1], 2 * interpolate(field, lat_axis=1), rtol=1e-5)


def test_irregular_coarse_grid_is_a_clear_error():
    with pytest.raises(DataError, match="latitude grid is not regular"):
        GridInterpolator.between(
            np.array([0.0, 1.0, 3.0]), np.arange(4.0), np.array([0.5]), np.array([0.5]), "bilinear"
        )


@pytest.mark.parametrize("method, order", [("nearest", 0), ("bilinear", 1), ("bicubic", 3)])
def test_corner_alignment_is_scipy_zoom_default(method, order):
    """alignment="corners" is scipy.ndimage.zoom(grid_mode=False, mode="nearest"): the
    end coarse values on the end fine points, whatever the coordinates say."""
    lat, lon, field = _toy()
    fine_lat, fine_lon = _cell_centred_fine_grid(lat, lon, 4)
    mine = GridInterpolator.between(lat, lon, fine_lat, fine_lon, method, alignment="corners")(
        field, lat_axis=1
    )
    reference = scipy.ndimage.zoom(field.astype(np.float64), (1, 4, 4), order=order, mode="nearest")
    np.testing.assert_allclose(mine, reference, atol=1e-5)
    np.testing.assert_allclose(
        mine[:, [0, -1]][:, :, [0, -1]], field[:, [0, -1]][:, :, [0, -1]], atol=1e-5
    )
