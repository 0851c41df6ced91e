"""Region boxes: parsing, edges, wrapping around a global grid, crossing 0 deg longitude."""

import numpy as np
import pytest
import xarray as xr

from stmodel.downscaling.coarsen import coarsen
from stmodel.downscaling.region import RegionBox, select_region
from stmodel.errors import DataError, UserError


def _global(spacing: float = 5.0) -> xr.Dataset:
    lat = np.arange(-87.5, 90, spacing)
    lon = np.arange(0, 360, spacing)
    field = np.add.outer(lat, lon / 1000).astype(np.float32)  # [lat, lon], identifies each cell
    return xr.Dataset({"field": (("lat", "lon"), field)}, coords={"lat": lat, "lon": lon})


def test_parse_and_equivalent_western_edges():
    assert RegionBox.parse("50,58,-10,2") == RegionBox(50, 58, -10, 2)
    a, b = RegionBox.parse("50,58,-10,2"), RegionBox.parse("50, 58, 350, 2")
    assert a.west == b.west == 350 and a.width == b.width == 12
    assert a.crosses_prime_meridian and b.crosses_prime_meridian
    assert not RegionBox.parse("20,70,0,90").crosses_prime_meridian
    assert RegionBox.parse("-90,90,0,360").width == 360


@pytest.mark.parametrize(
    "text, message",
    [
        ("50,58,-10", "expected LAT0,LAT1,LON0,LON1"),
        ("a,b,c,d", "expected LAT0,LAT1,LON0,LON1"),
        ("58,50,0,10", "LAT0 < LAT1"),
        ("0,10,5,5", "same meridian"),
        ("0,100,0,10", "-90 <= LAT0"),
    ],
)
def test_bad_boxes_are_user_errors(text, message):
    with pytest.raises(UserError, match=message):
        RegionBox.parse(text)


def test_edges_are_inclusive():
    region = select_region(_global(), RegionBox.parse("22.5,42.5,10,30"))
    np.testing.assert_allclose(region["lat"], [22.5, 27.5, 32.5, 37.5, 42.5])
    np.testing.assert_allclose(region["lon"], [10, 15, 20, 25, 30])


@pytest.mark.parametrize("text", ["-12.5,12.5,-20,15", "-12.5,12.5,340,15"])
def test_box_crossing_zero_is_contiguous_with_negative_west(text):
    ds = _global()
    region = select_region(ds, RegionBox.parse(text))
    np.testing.assert_allclose(region["lon"], np.arange(-20, 16, 5))
    # The values follow their longitudes: 340 E is -20 E.
    np.testing.assert_allclose(
        region["field"].sel(lat=2.5, lon=-20), ds["field"].sel(lat=2.5, lon=340)
    )
    np.testing.assert_allclose(
        region["field"].sel(lat=2.5, lon=10), ds["field"].sel(lat=2.5, lon=10)
    )


def test_margin_wraps_around_a_global_grid_and_stops_at_the_poles():
    region = select_region(_global(), RegionBox.parse("70,87.5,0,20"), margin=10)
    np.testing.assert_allclose(region["lon"], np.arange(-10, 31, 5))
    np.testing.assert_allclose(region["lat"], [62.5, 67.5, 72.5, 77.5, 82.5, 87.5])


def test_regional_data_crossing_zero_select_and_cover():
    ds = select_region(_global(), RegionBox.parse("40,60,-30,20"))  # data -30 .. 20
    inner = select_region(ds, RegionBox.parse("45,55,350,10"))
    np.testing.assert_allclose(inner["lon"], np.arange(-10, 11, 5))
    with pytest.raises(DataError, match="do not cover the region .*east of 20 E"):
        select_region(ds, RegionBox.parse("45,55,0,40"))
    with pytest.raises(DataError, match="do not cover the region .*north of 57.5 N"):
        select_region(ds, RegionBox.parse("45,70,0,10"))
    with pytest.raises(DataError, match="no grid point lies in the region"):
        select_region(ds, RegionBox.parse("45,55,100,120"))


def test_coarsen_block_means_sit_at_block_centres():
    ds = select_region(_global(), RegionBox.parse("-12.5,12.5,-20,15"))  # 6 x 8, crossing 0
    coarse = coarsen(ds, 2)
    np.testing.assert_allclose(coarse["lat"], [-10, 0, 10])
    np.testing.assert_allclose(coarse["lon"], [-17.5, -7.5, 2.5, 12.5])
    expected = ds["field"].values.reshape(3, 2, 4, 2).mean(axis=(1, 3))
    np.testing.assert_allclose(coarse["field"], expected, rtol=1e-6)
    trimmed = coarsen(select_region(_global(), RegionBox.parse("-12.5,17.5,-20,15")), 2)
    assert trimmed.sizes["lat"] == 3  # the seventh (northern) row fills no block


def test_real_era5_uk_split(shared_real):
    """The ERA5 UK file: 0.25 deg, crossing 0 deg; the README split keeps its first 32 x 48."""
    from stmodel.data.readers import open_canonical

    ds = open_canonical(shared_real / "era5_t2m_uk_2019-03.nc")
    fine = select_region(ds, RegionBox.parse("50.25,58,-10,1.75"))
    assert (fine.sizes["lat"], fine.sizes["lon"]) == (32, 48)
    assert fine["lon"].values[0] == -10 and fine["lon"].values[-1] == 1.75
    coarse = coarsen(fine, 4)
    assert (coarse.sizes["lat"], coarse.sizes["lon"]) == (8, 12)
    np.testing.assert_allclose(coarse["lat"].values[[0, -1]], [50.625, 57.625])
    np.testing.assert_allclose(coarse["lon"].values[[0, -1]], [-9.625, 1.375])


def test_halo_grid_extends_encodings_and_continues_static_fields():
    from stmodel.data.layout import VariableLayout
    from stmodel.downscaling.data import RegionalPair, extended_axis

    np.testing.assert_allclose(
        extended_axis(np.array([-1.0, 1.0, 3.0]), 2), [-5, -3, -1, 1, 3, 5, 7]
    )
    fine = select_region(_global(), RegionBox.parse("22.5,42.5,-10,10"))  # 5 x 5, crossing 0
    mask = (fine["field"] > 30).astype(np.float32)
    fine = fine.assign(land_sea_mask=mask)
    layout = VariableLayout(
        upper_air=(),
        levels=(),
        surface=("field",),
        constants=("land_sea_mask", "sin_lat", "cos_lat", "sin_lon", "cos_lon"),
    )
    pair = RegionalPair(fine, fine, fine, RegionBox.parse("22.5,42.5,-10,10"), layout, (2, 3))
    np.testing.assert_allclose(pair.network_lat, np.arange(12.5, 53, 5))
    np.testing.assert_allclose(pair.network_lon, np.arange(-25, 26, 5))
    static = pair.static()  # [lat, lon, static]
    assert static.shape == (9, 11, 5)
    np.testing.assert_allclose(static[:, 0, 1], np.sin(np.deg2rad(pair.network_lat)), atol=1e-6)
    np.testing.assert_allclose(static[0, :, 3], np.sin(np.deg2rad(pair.network_lon)), atol=1e-6)
    land = static[..., 0]
    # Inside, the mask (standardised); in the halo, the nearest edge value.
    np.testing.assert_array_equal(land[2:-2, 3:-3] > 0, mask.values > 0)
    np.testing.assert_array_equal(land[0], land[2])
    np.testing.assert_array_equal(land[:, 0], land[:, 3])
