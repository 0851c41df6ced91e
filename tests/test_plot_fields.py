"""Selecting map fields from canonical and WeatherBench 2 data; cyclic points; zoom; labels."""

import numpy as np
import pytest
import xarray as xr
from test_plot_helpers import canonical_dataset, weatherbench_forecast

from stmodel.errors import UserError
from stmodel.plot import field_label, field_symbol, pretty_units, select_field, with_cyclic_point
from stmodel.plot.fields import centred_on, is_global, valid_time_of, zoom
from stmodel.plot.maps import cell_edges, global_cells


@pytest.fixture(scope="module")
def truth():
    return canonical_dataset()


def test_canonical_and_weatherbench_layouts_give_the_same_field(truth):
    forecast = weatherbench_forecast(truth, lead_hours=(6, 12))
    from_forecast = select_field(forecast, "geopotential", level=500, time=0, lead=12)
    from_truth = select_field(truth, "geopotential", level=500, time="2020-01-01T12")
    assert from_forecast.dims == ("lat", "lon")
    assert np.all(np.diff(from_forecast["lat"].values) > 0)  # descending input sorted
    np.testing.assert_allclose(from_forecast.values, from_truth.values + 100.0, rtol=1e-6)
    assert valid_time_of(from_forecast) == np.datetime64("2020-01-01T12", "ns")
    # leads may be given as a timedelta too
    same = select_field(forecast, "geopotential", level=500, time=0, lead=np.timedelta64(12, "h"))
    np.testing.assert_array_equal(same.values, from_forecast.values)


def test_selection_errors_say_what_there_is(truth):
    with pytest.raises(UserError, match=r"levels 500, 850 hPa; say which"):
        select_field(truth, "geopotential", time=0)
    with pytest.raises(UserError, match=r"no level 700 hPa; it has 500, 850"):
        select_field(truth, "geopotential", level=700, time=0)
    with pytest.raises(UserError, match=r"has 3 times .*time=INDEX"):
        select_field(truth, "2m_temperature")
    with pytest.raises(UserError, match=r"no variable 'rain'.*geopotential"):
        select_field(truth, "rain", time=0)
    with pytest.raises(UserError, match=r"surface field"):
        select_field(truth, "2m_temperature", level=500, time=0)
    with pytest.raises(UserError, match=r"no prediction_timedelta"):
        select_field(truth, "2m_temperature", time=0, lead=6)
    with pytest.raises(UserError, match=r"still has dimensions member \(2\)"):
        select_field(truth["2m_temperature"].expand_dims(member=2), time=0)


def test_cyclic_point_closes_the_globe(truth):
    field = select_field(truth, "temperature", level=850, time=0)
    assert is_global(field)
    cyclic = with_cyclic_point(field)
    assert cyclic.sizes["lon"] == field.sizes["lon"] + 1
    assert cyclic["lon"].values[-1] == pytest.approx(360.0)
    np.testing.assert_array_equal(cyclic.values[:, -1], cyclic.values[:, 0])
    # a regional field is left alone
    box = field.sel(lon=slice(0, 90))
    assert not is_global(box)
    assert with_cyclic_point(box).sizes["lon"] == box.sizes["lon"]


@pytest.mark.parametrize("central_longitude", [0.0, 180.0, -100.0])
def test_global_cells_span_the_map_edge_to_edge(truth, central_longitude):
    field = select_field(truth, "temperature", level=850, time=0)
    lon_edges, lat_edges, values = global_cells(field, central_longitude)
    assert lon_edges[0] == pytest.approx(central_longitude - 180.0, abs=1e-5)
    assert lon_edges[-1] == pytest.approx(central_longitude + 180.0, abs=1e-5)
    assert np.all(np.diff(lon_edges) >= 0)
    assert lat_edges[0] >= -90.0 and lat_edges[-1] <= 90.0
    assert values.shape == (len(lat_edges) - 1, len(lon_edges) - 1)
    # Every cell shows the grid column whose cell it lies in (checked at its middle).
    grid_lon = field["lon"].values
    for cell in range(values.shape[1]):
        west_edge, east_edge = lon_edges[cell], lon_edges[cell + 1]
        if east_edge - west_edge < 1e-3:  # cut to nothing at the map edge
            continue
        middle = ((west_edge + east_edge) / 2) % 360.0
        distance = np.abs((grid_lon - middle + 180.0) % 360.0 - 180.0)
        np.testing.assert_array_equal(values[:, cell], field.values[:, np.argmin(distance)])
    rolled = centred_on(field, central_longitude)
    assert rolled["lon"].values[0] >= central_longitude - 180.0
    assert rolled["lon"].values[-1] == pytest.approx(rolled["lon"].values[0] + 360.0)


def test_cell_edges_of_a_regional_grid():
    field = xr.DataArray(
        np.zeros((3, 4)),
        dims=("lat", "lon"),
        coords={"lat": [50.0, 50.5, 51.0], "lon": [-1.0, -0.5, 0.0, 0.5]},
    )
    lon_edges, lat_edges = cell_edges(field)
    np.testing.assert_allclose(lon_edges, [-1.25, -0.75, -0.25, 0.25, 0.75])
    np.testing.assert_allclose(lat_edges, [49.75, 50.25, 50.75, 51.25])


def test_zoom_across_greenwich_on_a_0_360_field(truth):
    field = select_field(truth, "temperature", level=850, time=0)
    box = zoom(field, (-10.0, 2.0, 40.0, 60.0), margin_cells=0)
    lon = box["lon"].values
    assert lon.min() >= -10.0 and lon.max() <= 2.0
    assert np.all(np.diff(lon) > 0)  # contiguous across 0 deg
    np.testing.assert_array_equal(
        box.sel(lon=-5.625).values, field.sel(lon=354.375, lat=box["lat"]).values
    )
    with pytest.raises(UserError, match="fewer than 2 x 2"):
        zoom(field, (1.0, 2.0, 40.0, 41.0), margin_cells=0)
    with pytest.raises(UserError, match="lon_min < lon_max"):
        zoom(field, (10.0, 2.0, 40.0, 60.0))


def test_labels(truth):
    assert pretty_units("m2 s-2") == "m² s⁻²"
    assert pretty_units("m s**-1") == "m s⁻¹"
    assert pretty_units("kg kg-1") == "kg kg⁻¹"
    assert pretty_units("K") == "K"
    assert field_symbol("geopotential", 500) == "Z500"
    assert field_symbol("temperature", 850) == "T850"
    assert field_symbol("2m_temperature") == "T2M"
    assert field_symbol("mean_sea_level_pressure") == "MSLP"
    assert field_symbol("my_tracer", 300) == "my_tracer 300 hPa"
    z500 = select_field(truth, "geopotential", level=500, time=0)
    assert field_label(z500) == "Z500 (m² s⁻²)"
    t2m = select_field(truth, "2m_temperature", time=0)
    assert field_label(t2m) == "T2M (K)"
