"""Ensemble plots: CRPS and spread-skill against lead, rank histograms, plumes,
probability maps and spaghetti, on a tiny hand-made ensemble and its evaluation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from matplotlib.collections import QuadMesh
from matplotlib.contour import ContourSet
from test_plot_helpers import colour_bar_labels, map_axes

import stmodel
from stmodel.data.canonical import GRAVITY
from stmodel.errors import UserError
from stmodel.plot import (
    plot_crps_vs_lead,
    plot_plume,
    plot_probability_map,
    plot_rank_histogram,
    plot_spaghetti,
    plot_spread_skill_vs_lead,
    save_figure,
)

MEMBERS = 5
LEVELS = [500, 850]
INITS = pd.date_range("2021-03-02", periods=2, freq="12h")
LEADS = pd.to_timedelta([6, 12, 24], unit="h")
TRUTH_TIMES = pd.date_range("2021-03-01", "2021-03-04", freq="6h")
# A box across 0 deg: 9 x 13 points of 2.5 deg.
REGIONAL = (np.arange(40.0, 60.01, 2.5), np.arange(-10.0, 20.01, 2.5))
GLOBAL = (np.arange(-80.0, 80.01, 20.0), np.arange(0.0, 359.0, 20.0))
HEIGHT = 5500.0  # m, the Z500 contour of the spaghetti


def _truth(grid) -> xr.Dataset:
    """Z500/Z850 near 5,500 m height falling poleward (so the 5,500 m line crosses the
    map), temperature as noise about 270 K; canonical, latitudes ascending."""
    lat, lon = grid
    rng = np.random.default_rng(0)
    shape = (TRUTH_TIMES.size, len(LEVELS), lat.size, lon.size)
    height = HEIGHT + 10.0 * (50.0 - np.abs(lat))[:, None] + 20.0 * np.sin(np.deg2rad(3 * lon))
    geopotential = GRAVITY * (height + 15.0 * rng.normal(size=shape))
    temperature = 270.0 + 3.0 * rng.normal(size=shape)
    dims = ("time", "level", "lat", "lon")
    return xr.Dataset(
        {
            "geopotential": (dims, geopotential.astype(np.float32), {"units": "m2 s-2"}),
            "temperature": (dims, temperature.astype(np.float32), {"units": "K"}),
        },
        coords={"time": TRUTH_TIMES.values, "level": LEVELS, "lat": lat, "lon": lon},
    )


def _ensemble(truth: xr.Dataset) -> xr.Dataset:
    """Truth at the valid times plus a shared and an own error per member, in the layout
    `stmodel forecast --members` writes (latitude descending, realization after time)."""
    rng = np.random.default_rng(1)
    valid = xr.DataArray(INITS.values, dims="time", coords={"time": INITS.values}) + xr.DataArray(
        LEADS.values, dims="prediction_timedelta", coords={"prediction_timedelta": LEADS.values}
    )
    forecast = truth.sel(time=valid).drop_vars("time").assign_coords(time=INITS.values)
    forecast = forecast.expand_dims({"realization": np.arange(MEMBERS)}, axis=1)
    for name in forecast.data_vars:
        size = 0.8 * float(truth[name].isel(lat=0, lon=0).std())
        shared = rng.normal(size=forecast[name].isel(realization=[0]).shape)  # one for all
        own = rng.normal(size=forecast[name].shape)
        forecast[name] = (forecast[name] + size * (shared + own)).astype(np.float32)
        forecast[name].attrs = dict(truth[name].attrs)
    forecast = forecast.rename(lat="latitude", lon="longitude").isel(latitude=slice(None, None, -1))
    forecast.attrs["model_name"] = "toyens"
    return forecast.transpose("time", "realization", "prediction_timedelta", ...)


def _climatology(truth: xr.Dataset) -> xr.Dataset:
    climatology = truth.sel(time=truth["time"] < INITS[0]).groupby("time.hour").mean("time")
    climatology.attrs["climatology_kind"] = "hour"
    return climatology


@pytest.fixture(scope="module")
def regional():
    truth = _truth(REGIONAL)
    return truth, _ensemble(truth), _climatology(truth)


@pytest.fixture(scope="module")
def scored(regional):
    """The ensemble's scores and rank histograms, and its mean's scored as a one-member
    ensemble (both named toyens, as two forecasts of one model would be)."""
    truth, ensemble, climatology = regional
    # The toy truth holds too few past states for a probabilistic climatology of 5 members.
    scores, histograms = stmodel.evaluate(
        ensemble,
        truth,
        climatology,
        variables=["temperature"],
        rank_histograms=True,
        climatology_members=0,
    )
    mean = ensemble.mean("realization", keep_attrs=True)
    one_member = stmodel.evaluate(
        mean, truth, climatology, variables=["temperature"], metrics=["rmse", "crps"]
    )
    return scores, histograms, one_member


def _lines(axes) -> dict:
    return {line.get_label(): line for line in axes.lines}


def test_crps_against_lead_draws_every_forecast(scored, tmp_path):
    scores, _, one_member = scored
    figure = plot_crps_vs_lead(
        {"ensemble": scores, "ensemble mean": one_member}, "temperature", level=850
    )
    (axes,) = figure.axes
    lines = _lines(axes)
    assert set(lines) == {"ensemble", "ensemble mean", "persistence", "climatology"}
    crps = scores["temperature"].sel(metric="crps", level=850)
    np.testing.assert_allclose(lines["ensemble"].get_ydata(), crps.sel(forecast="toyens"))
    mean_crps = one_member["temperature"].sel(metric="crps", level=850, forecast="toyens")
    np.testing.assert_allclose(lines["ensemble mean"].get_ydata(), mean_crps)
    np.testing.assert_allclose(lines["ensemble"].get_xdata(), [0.25, 0.5, 1.0])
    # a calibrated ensemble beats its own mean taken as one member
    assert (lines["ensemble"].get_ydata() < lines["ensemble mean"].get_ydata()).all()
    assert axes.get_title() == "T850 CRPS" and axes.get_ylabel() == "CRPS (K)"
    assert save_figure(figure, tmp_path / "crps.png", dpi=50).exists()
    with pytest.raises(UserError, match="both name a forecast 'toyens'; pass a mapping"):
        plot_crps_vs_lead([scores, one_member], "temperature", level=850)
    figure = plot_crps_vs_lead(scores, "temperature", level=500, forecasts=["toyens"])
    assert list(_lines(figure.axes[0])) == ["toyens"]


def test_spread_skill_ratio_is_drawn_with_the_ideal_one(scored, tmp_path):
    scores, _, _ = scored
    figure = plot_spread_skill_vs_lead(scores, "temperature", level=500)
    (axes,) = figure.axes
    lines = _lines(axes)
    # the baselines have no spread, so no line; the reference sits at 1
    assert set(lines) == {"toyens", "ideal (1)"}
    np.testing.assert_allclose(lines["ideal (1)"].get_ydata(), [1.0, 1.0])
    ratio = scores["temperature"].sel(metric="spread_skill_ratio", level=500, forecast="toyens")
    np.testing.assert_allclose(lines["toyens"].get_ydata(), ratio)
    assert axes.get_title() == "T500 spread/skill (best at 1)"
    assert save_figure(figure, tmp_path / "ssr.png", dpi=50).exists()


def test_rank_histograms_from_evaluate_sum_to_one_over_a_flat_line(scored, tmp_path):
    _, histograms, _ = scored
    assert histograms["temperature"].dims == ("prediction_timedelta", "level", "rank")
    figure = plot_rank_histogram(histograms, "temperature", level=850)
    panels = [axes for axes in figure.axes if axes.get_visible()]
    assert [axes.get_title() for axes in panels] == ["+6 h", "+12 h", "+24 h (1 d)"]
    expected = histograms["temperature"].sel(level=850)
    for index, axes in enumerate(panels):
        (bars,) = axes.containers
        heights = np.array([bar.get_height() for bar in bars])
        assert len(heights) == MEMBERS + 1
        np.testing.assert_allclose(heights.sum(), 1.0)
        np.testing.assert_allclose(heights, expected.isel(prediction_timedelta=index))
        (flat,) = axes.lines
        np.testing.assert_allclose(flat.get_ydata(), 1.0 / (MEMBERS + 1))
    assert figure.get_suptitle() == "T850 rank histogram, 5 members (toyens)"
    assert save_figure(figure, tmp_path / "ranks.png", dpi=50).exists()
    # raw counts of one lead draw as frequencies too
    counts = 40.0 * histograms["temperature"].sel(level=500)
    figure = plot_rank_histogram(counts, leads="12h")
    (axes,) = [axes for axes in figure.axes if axes.get_visible()]
    np.testing.assert_allclose(sum(bar.get_height() for bar in axes.containers[0]), 1.0)
    with pytest.raises(UserError, match="no lead of 48 h; they have 6, 12, 24 h"):
        plot_rank_histogram(histograms, "temperature", level=850, leads=48)


def test_plume_draws_every_member_the_mean_and_the_truth(regional, tmp_path):
    truth, ensemble, _ = regional
    # 351 deg east is -9 deg: the box's second column; 50.6 N: the row of 50 N
    figure = plot_plume(ensemble, "temperature", 50.6, 351.0, level=850, time=1, truth=truth)
    (axes,) = figure.axes
    members = [line for line in axes.lines if line.get_gid() == "member"]
    assert len(members) == MEMBERS
    point = ensemble["temperature"].isel(time=1).sel(level=850, latitude=50.0, longitude=-10.0)
    for member, line in enumerate(members):
        np.testing.assert_allclose(line.get_ydata(), point.isel(realization=member))
    (mean,) = [line for line in axes.lines if line.get_gid() == "mean"]
    np.testing.assert_allclose(mean.get_ydata(), point.mean("realization"), rtol=1e-6)
    (observed,) = [line for line in axes.lines if line.get_gid() == "truth"]
    valid = INITS[1] + LEADS
    expected = truth["temperature"].sel(level=850, lat=50.0, lon=-10.0, time=valid)
    np.testing.assert_allclose(observed.get_ydata(), expected)
    assert "T850 at 50°N, 10°W" in axes.get_title()
    assert axes.get_ylabel() == "T850 (K)"
    assert save_figure(figure, tmp_path / "plume.png", dpi=50).exists()
    with pytest.raises(UserError, match=r"point 50 N, 100 E is off the grid of variable 'tem"):
        plot_plume(ensemble, "temperature", 50.0, 100.0, level=850, time=1)
    with pytest.raises(UserError, match="'temperature' has 2 times"):
        plot_plume(ensemble, "temperature", 50.0, 0.0, level=850)


def test_probability_map_is_the_fraction_of_members_exceeding(regional, tmp_path):
    _, ensemble, climatology = regional
    # Grid-line labels are most of a map's drawing time (test_plot_maps draws them).
    figure = plot_probability_map(
        ensemble,
        "temperature",
        2.0,
        climatology=climatology,
        level=850,
        time=0,
        lead=12,
        gridlines=False,
    )
    (axes,) = map_axes(figure)
    (mesh,) = [child for child in axes.get_children() if isinstance(child, QuadMesh)]
    members = ensemble["temperature"].isel(time=0).sel(level=850, prediction_timedelta=LEADS[1])
    hour = (INITS[0] + LEADS[1]).hour
    anomaly = members - climatology["temperature"].sel(level=850, hour=hour).values[::-1]
    expected = (anomaly > 2.0).mean("realization").values[::-1]  # latitudes ascending
    assert 0.0 < expected.mean() < 1.0  # some points likely, some not
    np.testing.assert_allclose(mesh.get_array(), expected)
    assert mesh.norm.vmin == 0.0 and mesh.norm.vmax == 1.0
    assert colour_bar_labels(figure) == ["P(T850 anomaly > 2 K)"]
    assert axes.get_title().startswith("P(T850 anomaly > 2 K), 5 members\ninit 2021-03-02")
    assert save_figure(figure, tmp_path / "probability.png", dpi=50).exists()
    colder = plot_probability_map(
        ensemble,
        "temperature",
        -2.0,
        climatology=climatology,
        below=True,
        level=850,
        time=0,
        lead=12,
        extent=(-5.0, 10.0, 45.0, 55.0),
        coastlines=False,
        gridlines=False,
    )
    (axes,) = map_axes(colder)
    (mesh,) = [child for child in axes.get_children() if isinstance(child, QuadMesh)]
    below = (anomaly < -2.0).mean("realization").sortby("latitude")
    # the extent's box and its two-cell margin
    inside = below.sel(latitude=slice(40.0, 60.0), longitude=slice(-10.0, 15.0))
    np.testing.assert_allclose(mesh.get_array(), inside.values)
    assert colour_bar_labels(colder) == ["P(T850 anomaly < -2 K)"]


def test_spaghetti_draws_each_members_contour_at_the_height(tmp_path):
    truth = _truth(GLOBAL)
    ensemble = _ensemble(truth)
    figure = plot_spaghetti(
        ensemble, "geopotential", HEIGHT, level=500, time=0, lead=24, truth=truth, gridlines=False
    )
    (axes,) = map_axes(figure)
    contours = [child for child in axes.get_children() if isinstance(child, ContourSet)]
    members = [lines for lines in contours if lines.get_gid() == "member"]
    assert len(members) == MEMBERS
    for lines in contours:
        np.testing.assert_allclose(lines.levels, [HEIGHT * GRAVITY])
    fields = ensemble["geopotential"].isel(time=0).sel(level=500, prediction_timedelta=LEADS[2])
    fields = fields.sortby("latitude")
    for member, lines in enumerate(members):
        # Where a line crosses a grid column, that member's field interpolated along the
        # column is the contour value: the line is this member's.
        points = np.concatenate([path.vertices for path in lines.get_paths()])  # [n, lon/lat]
        on_column = points[np.isin(points[:, 0], GLOBAL[1])]
        assert len(on_column) >= len(GLOBAL[1])
        for lon, lat in on_column:
            column = fields.isel(realization=member).sel(longitude=lon)
            value = np.interp(lat, column["latitude"].values, column.values)
            np.testing.assert_allclose(value, HEIGHT * GRAVITY, rtol=1e-5)
    assert [lines.get_gid() for lines in contours].count("truth") == 1
    assert axes.get_title().startswith("Z500 = 5500 m geopotential height (53,937 m² s⁻²)")
    assert [text.get_text() for text in axes.get_legend().get_texts()] == [
        "members (5)",
        "truth",
    ]
    assert save_figure(figure, tmp_path / "spaghetti.png", dpi=50).exists()
    in_geopotential = plot_spaghetti(
        ensemble,
        "geopotential",
        53000.0,
        value_units="m2 s-2",
        level=500,
        time=0,
        lead=24,
        coastlines=False,
        gridlines=False,
    )
    (axes,) = map_axes(in_geopotential)
    levels = {float(c.levels[0]) for c in axes.get_children() if isinstance(c, ContourSet)}
    assert levels == {53000.0}
    with pytest.raises(UserError, match="value_units='dam' for the contour of 'geopotential'"):
        plot_spaghetti(ensemble, "geopotential", 550, value_units="dam", level=500, time=0, lead=6)
    with pytest.raises(UserError, match="no member's 'geopotential' crosses 9000 m geopotential"):
        plot_spaghetti(ensemble, "geopotential", 9000.0, level=500, time=0, lead=6)


def test_wrong_inputs_name_the_variable_and_what_was_expected(regional, scored):
    _, ensemble, _ = regional
    scores, histograms, one_member = scored
    deterministic = ensemble.isel(realization=0, drop=True)
    with pytest.raises(UserError, match="'temperature' has no realization dim.*--members N"):
        plot_probability_map(deterministic, "temperature", 2.0, level=850, time=0, lead=6)
    with pytest.raises(UserError, match="'geopotential' has no realization dim"):
        plot_plume(deterministic, "geopotential", 50.0, 0.0, level=500, time=0)
    with pytest.raises(UserError, match="no variable 'wind'; it has geopotential, temperature"):
        plot_spaghetti(ensemble, "wind", 1.0, time=0, lead=6)
    with pytest.raises(UserError, match="'temperature' has no level 700 hPa; it has 500, 850"):
        plot_probability_map(ensemble, "temperature", 2.0, level=700, time=0, lead=6)
    with pytest.raises(UserError, match="no spread_skill_ratio of 'temperature'.*metrics="):
        plot_spread_skill_vs_lead(one_member, "temperature", level=850)
    with pytest.raises(UserError, match="no variable 'geopotential'; they have temperature"):
        plot_crps_vs_lead(scores, "geopotential", level=500)
    with pytest.raises(UserError, match="'temperature' has levels 500, 850 hPa; say which"):
        plot_rank_histogram(histograms, "temperature")
    with pytest.raises(UserError, match="only an ensemble forecast .* has rank histograms"):
        plot_rank_histogram(xr.Dataset(attrs={"model_name": "det"}), "temperature")
    with pytest.raises(UserError, match="as_dataframe=True"):
        plot_crps_vs_lead(scores.to_dataframe(), "temperature", level=850)
