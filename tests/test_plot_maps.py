"""Maps, panels, overlays and animations: titles, colour bars, scales and projections."""

import cartopy.crs as ccrs
import numpy as np
import pytest
import xarray as xr
from matplotlib.contour import ContourSet
from test_plot_helpers import (
    canonical_dataset,
    colour_bar_labels,
    map_axes,
    regional_dataset,
    weatherbench_forecast,
    white_pixels_inside_map,
)

from stmodel.errors import UserError
from stmodel.plot import (
    animate_leads,
    make_projection,
    plot_contours_over_colour,
    plot_downscaling,
    plot_map,
    plot_truth_forecast_error,
    plot_wind,
    save_figure,
)
from stmodel.plot.animation import gif_frame_count, lead_frame_paths
from stmodel.plot.colours import error_scale, field_scale
from stmodel.plot.overlays import contour_levels


@pytest.fixture(scope="module")
def truth():
    return canonical_dataset()


def test_global_map_has_title_units_and_robinson(truth, tmp_path):
    figure = plot_map(truth, "geopotential", level=500, time=1)
    (axes,) = map_axes(figure)
    assert isinstance(axes.projection, ccrs.Robinson)
    assert axes.get_title().startswith("Z500")
    assert "2020-01-01 06:00 UTC" in axes.get_title()
    assert colour_bar_labels(figure) == ["Z500 (m² s⁻²)"]
    path = save_figure(figure, tmp_path / "nested" / "z500.png", dpi=50)
    assert path.exists() and not list(path.parent.glob(".*tmp*"))


def test_regional_field_gets_a_conic_map_framed_to_its_box():
    figure = plot_map(regional_dataset(), projection=None)
    (axes,) = map_axes(figure)
    assert isinstance(axes.projection, ccrs.LambertConformal)
    assert axes.projection.proj4_params["lon_0"] == pytest.approx(-4.0)
    assert colour_bar_labels(figure) == ["T2M (K)"]
    west, east, south, north = axes.get_extent(crs=ccrs.PlateCarree())
    # the box -10.25 .. 2.25, 49.75 .. 58.25 (cell edges), a little more where the cone bulges
    assert -12.5 < west < -10.0 and 2.0 < east < 4.5
    assert 49.0 < south < 50.0 and 58.0 < north < 59.0


def test_projection_names_and_errors():
    assert isinstance(make_projection("platecarree"), ccrs.PlateCarree)
    assert isinstance(make_projection("Robinson"), ccrs.Robinson)
    southern = make_projection("LambertConformal", extent=(110, 155, -45, -10))
    assert southern.proj4_params["lat_1"] < 0
    assert isinstance(
        make_projection("LambertConformal", extent=(-20, 50, -35, 35)), ccrs.PlateCarree
    )  # no cone fits a box across the equator
    with pytest.raises(UserError, match="needs a regional extent"):
        make_projection("LambertConformal")
    with pytest.raises(UserError, match="unknown map projection 'Mollweid'"):
        make_projection("Mollweid")


def test_zoomed_global_map_and_contourf(truth):
    figure = plot_map(
        truth,
        "temperature",
        level=850,
        time=0,
        extent=(-30, 40, 30, 72),
        kind="contourf",
        projection="PlateCarree",
    )
    (axes,) = map_axes(figure)
    (filled,) = [child for child in axes.get_children() if isinstance(child, ContourSet)]
    assert filled.levels.size > 5


def test_error_scale_is_symmetric_about_zero():
    errors = np.array([-3.0, -1.0, 0.5, 8.0])
    scale = error_scale([errors])
    assert scale.norm.vmin == -scale.norm.vmax
    assert scale.cmap == "RdBu_r"
    assert scale.norm(0.0) == pytest.approx(0.5)
    lopsided = error_scale([errors], vmin=-1.0, vmax=4.0)
    assert lopsided.norm(0.0) == pytest.approx(0.5)  # zero stays white
    with pytest.raises(ValueError, match="straddle zero"):
        error_scale([errors], vmin=1.0, vmax=4.0)
    # signed winds diverge about zero; temperatures use a sequential perceptual map
    wind = field_scale([np.array([-5.0, 20.0])], "u_component_of_wind")
    assert wind.norm.vmin == -20.0 and wind.norm.vmax == 20.0
    assert field_scale([np.array([250.0, 300.0])], "temperature").cmap == "plasma"


def test_an_all_nan_field_is_a_clear_error(truth):
    with pytest.raises(UserError, match="every value of the field is NaN"):
        plot_map(truth["temperature"] * np.nan, level=850, time=0)


def test_truth_forecast_error_panels(truth):
    forecast = weatherbench_forecast(truth, lead_hours=(6, 12))
    figure = plot_truth_forecast_error(truth, forecast, "temperature", level=850, time=0, lead=6)
    panels = map_axes(figure)
    assert [axes.get_title() for axes in panels[:2]] == ["Truth", "Forecast"]
    # the forecast is truth + 100 everywhere: RMSE 100 and a one-signed error
    assert panels[2].get_title() == "Forecast − truth (RMSE 100)"
    assert "+6 h" in figure.get_suptitle() and "valid 2020-01-01 06:00 UTC" in figure.get_suptitle()
    meshes = [
        next(
            child
            for child in axes.get_children()
            if hasattr(child, "get_array") and child.get_array() is not None
        )
        for axes in panels
    ]
    assert meshes[0].norm.vmin == meshes[1].norm.vmin and meshes[0].norm.vmax == meshes[1].norm.vmax
    assert meshes[2].norm.vmin == -meshes[2].norm.vmax
    assert meshes[2].cmap.name == "RdBu_r"
    assert colour_bar_labels(figure) == ["T850 (K)", "error: T850 (K)"]


def test_error_panel_covers_the_whole_grid_when_coordinates_differ_in_the_last_bits(truth):
    forecast = weatherbench_forecast(truth, lead_hours=(6,))
    forecast = forecast.assign_coords(
        latitude=forecast["latitude"] + 1e-12, longitude=forecast["longitude"] * (1 + 1e-15)
    )
    figure = plot_truth_forecast_error(truth, forecast, "temperature", level=850, time=0, lead=6)
    truth_mesh, _, error_mesh = (
        next(
            child
            for child in axes.get_children()
            if hasattr(child, "get_array") and child.get_array() is not None
        )
        for axes in map_axes(figure)
    )
    assert error_mesh.get_array().shape == truth_mesh.get_array().shape
    assert map_axes(figure)[2].get_title() == "Forecast − truth (RMSE 100)"


def test_panels_refuse_different_grids(truth):
    coarse = truth.isel(lon=slice(None, None, 2))
    with pytest.raises(UserError, match="differs from the forecast grid"):
        plot_truth_forecast_error(coarse, truth.isel(time=[0]), "temperature", level=850)


def test_downscaling_panels_share_one_scale_and_ignore_coarse_cells_off_the_map():
    truth = regional_dataset()  # 0.5 deg, 50 .. 58 N, 10 W .. 2 E
    downscaled = truth + 0.5
    for name in downscaled.data_vars:
        downscaled[name].attrs = dict(truth[name].attrs)
    # A 1 deg coarse field reaching beyond the box, with a hot cell off the map.
    lat, lon = np.arange(46.0, 62.1), np.arange(-14.0, 6.1)
    values = np.full((1, lat.size, lon.size), 280.0, np.float32)
    values[0, 2, 2] = 400.0  # 48 N, 12 W: within the margin the zoom keeps, outside the map
    coarse = xr.Dataset(
        {"2m_temperature": (("time", "lat", "lon"), values, {"units": "K"})},
        coords={"time": truth["time"].values, "lat": lat, "lon": lon},
    )
    figure = plot_downscaling(coarse, downscaled, truth)
    panels = map_axes(figure)
    assert all(isinstance(axes.projection, ccrs.LambertConformal) for axes in panels)
    assert [axes.get_title() for axes in panels] == [
        "Coarse input (1°)",
        "Downscaled (0.5°)",
        "Truth (0.5°)",
        "Downscaled − truth (RMSE 0.5)",
    ]
    meshes = [
        next(
            child
            for child in axes.get_children()
            if hasattr(child, "get_array") and child.get_array() is not None
        )
        for axes in panels
    ]
    assert len({(mesh.norm.vmin, mesh.norm.vmax) for mesh in meshes[:3]}) == 1
    assert meshes[0].norm.vmax == pytest.approx(float(downscaled["2m_temperature"].max()))
    assert meshes[3].norm.vmin == -meshes[3].norm.vmax and meshes[3].cmap.name == "RdBu_r"
    assert colour_bar_labels(figure) == ["T2M (K)", "error: T2M (K)"]


def test_geopotential_contours_in_decametres_over_temperature(truth):
    figure = plot_contours_over_colour(
        truth,
        colour_variable="temperature",
        colour_level=850,
        contour_variable="geopotential",
        contour_level=500,
        time=0,
    )
    (axes,) = map_axes(figure)
    assert axes.get_title().startswith("T850 (colour), Z500 every 6 dam (contours)")
    (lines,) = [child for child in axes.get_children() if isinstance(child, ContourSet)]
    np.testing.assert_allclose(np.asarray(lines.levels) % 6.0, 0.0)
    assert colour_bar_labels(figure) == ["T850 (K)"]


def test_contour_levels_fall_back_when_the_interval_does_not_fit():
    values = np.array([5.0, 27.0])
    np.testing.assert_allclose(contour_levels(values, 6.0), [6, 12, 18, 24])
    automatic = contour_levels(values, 100.0)  # would give no line at all
    assert len(automatic) > 4


@pytest.mark.parametrize("kind", ["quiver", "streamlines"])
def test_wind_maps(truth, kind):
    figure = plot_wind(truth, level=850, time=0, kind=kind)
    (axes,) = map_axes(figure)
    assert axes.get_title().startswith("WS850: wind speed and")
    assert colour_bar_labels(figure) == ["WS850 (m s⁻¹)"]
    with pytest.raises(UserError, match="no 10m_u_component_of_wind"):
        plot_wind(truth, time=0, kind=kind)


def test_animation_to_gif_and_frames(truth, tmp_path):
    forecast = weatherbench_forecast(truth, lead_hours=(6, 12))
    gif = animate_leads(
        forecast, tmp_path / "z500.gif", "geopotential", level=500, time=0, progress=False, dpi=40
    )
    assert gif_frame_count(gif) == 2
    folder = animate_leads(
        forecast,
        tmp_path / "frames",
        "geopotential",
        level=500,
        time=0,
        leads=[12],
        progress=False,
        dpi=40,
    )
    assert [path.name for path in lead_frame_paths(folder)] == ["lead_000.png"]
    with pytest.raises(UserError, match="no prediction_timedelta"):
        animate_leads(truth, tmp_path / "x.gif", "geopotential", level=500)


@pytest.mark.parametrize("kind", ["pcolormesh", "contourf"])
@pytest.mark.parametrize("central_longitude", [0.0, 180.0])
def test_global_maps_have_no_seam(truth, kind, central_longitude):
    figure = plot_map(
        truth,
        "temperature",
        level=850,
        time=0,
        kind=kind,
        gridlines=False,
        coastlines=False,
        projection=ccrs.PlateCarree(central_longitude),
        figsize=(6, 4),
    )
    # contours stop at the outermost grid latitudes (87.2 deg): look inside them
    assert white_pixels_inside_map(figure, lat_limit=85.0) == 0


def test_a_gap_would_be_seen(truth):
    # The check above can fail: a field missing its last 3 longitudes (337.5 .. 360 deg)
    # shown on the whole globe leaves a white strip.
    figure = plot_map(
        truth.isel(lon=slice(0, -3)),
        "temperature",
        level=850,
        time=0,
        gridlines=False,
        coastlines=False,
        projection="PlateCarree",
        extent=(0, 360, -90, 90),
        figsize=(6, 4),
    )
    assert white_pixels_inside_map(figure, lat_limit=85.0) > 100
