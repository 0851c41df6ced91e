"""Maps of the real reanalysis samples in ../shared (skipped where they are not present)."""

import cartopy.crs as ccrs
import pytest
from test_plot_helpers import colour_bar_labels, map_axes, white_pixels_inside_map

from stmodel.data.readers import open_canonical
from stmodel.plot import plot_map, plot_wind, save_figure
from stmodel.plot.fields import is_global, select_field


@pytest.fixture(scope="module")
def era_interim(shared_real):
    # monthly means: dims (month, level, lat, lon); January
    return open_canonical(shared_real / "eraint_uvz.nc").isel(month=0).load()


def test_era_interim_z500_without_seam(era_interim):
    field = select_field(era_interim, "geopotential", level=500)
    assert is_global(field) and field["lon"].values[0] == 0.0
    for central_longitude in (0.0, 180.0):
        figure = plot_map(
            era_interim,
            "geopotential",
            level=500,
            gridlines=False,
            projection=ccrs.PlateCarree(central_longitude),
            figsize=(6, 3.5),
        )
        assert white_pixels_inside_map(figure, lat_limit=89.0) == 0


def test_era_interim_jet_vectors_over_europe(era_interim):
    figure = plot_wind(era_interim, level=200, extent=(-30, 40, 30, 72))
    (axes,) = map_axes(figure)
    assert isinstance(axes.projection, ccrs.LambertConformal)
    assert colour_bar_labels(figure) == ["WS200 (m s⁻¹)"]


def test_era5_british_isles_t2m(shared_real, tmp_path):
    data = open_canonical(shared_real / "era5_t2m_uk_2019-03.nc")
    figure = plot_map(data, time="2019-03-05T12")
    (axes,) = map_axes(figure)
    assert isinstance(axes.projection, ccrs.LambertConformal)
    assert axes.projection.proj4_params["lon_0"] == pytest.approx(-4.0)
    assert "2019-03-05 12:00 UTC" in axes.get_title()
    assert colour_bar_labels(figure) == ["T2M (K)"]
    save_figure(figure, tmp_path / "t2m.png", dpi=50)
