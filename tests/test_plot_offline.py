"""Coastlines and borders come from the bundled Natural Earth outlines: no network, ever."""

import socket
import urllib.request

import cartopy
import cartopy.io
import cartopy.io.shapereader
import numpy as np
import pytest
from cartopy.mpl.feature_artist import FeatureArtist
from matplotlib.figure import Figure
from test_plot_helpers import canonical_dataset, regional_dataset

from stmodel.plot import plot_map, plot_truth_forecast_error, save_figure
from stmodel.plot.offline_features import outline_lines, resolution_for_extent


class NetworkUsed(AssertionError):
    pass


@pytest.fixture
def no_network(monkeypatch, tmp_path):
    """Any connection, URL fetch or cartopy download attempt raises NetworkUsed.

    cartopy's data folders point at an empty folder, so Natural Earth files a
    developer may have downloaded before cannot hide a download attempt.
    """

    def refuse(*args, **kwargs):
        raise NetworkUsed(f"network access attempted: {args[1:] if args else ''}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setattr(cartopy.io.Downloader, "acquire_resource", refuse)
    monkeypatch.setattr(cartopy.io.shapereader.NEShpDownloader, "acquire_resource", refuse)
    monkeypatch.setitem(cartopy.config, "data_dir", str(tmp_path / "cartopy_data"))
    monkeypatch.setitem(cartopy.config, "pre_existing_data_dir", str(tmp_path / "cartopy_pre"))


def _feature_artists(figure):
    return [
        child
        for axes in figure.axes
        for child in axes.get_children()
        if isinstance(child, FeatureArtist)
    ]


def test_the_guard_catches_cartopys_own_download(no_network, tmp_path):
    # Proof that the guard works: cartopy's default coastlines try to download.
    figure = Figure()
    axes = figure.add_subplot(projection=cartopy.crs.PlateCarree())
    axes.coastlines()
    with pytest.raises(NetworkUsed):
        figure.savefig(tmp_path / "download.png")


def test_global_and_regional_maps_draw_offline(no_network, tmp_path):
    data = canonical_dataset()
    world = plot_map(data, "geopotential", level=500, time=0)  # Robinson, 1:110m
    europe = plot_map(
        data,
        "temperature",
        level=850,
        time=0,
        extent=(-10, 30, 35, 65),
        projection="LambertConformal",
    )  # 1:50m
    islands = plot_map(regional_dataset())  # regional data across 0 deg
    for name, figure in (("world", world), ("europe", europe), ("islands", islands)):
        path = save_figure(figure, tmp_path / f"{name}.png", dpi=60)
        assert path.stat().st_size > 10_000
        # coastlines and borders, drawn
        assert len(_feature_artists(figure)) == 2


def test_panels_draw_offline(no_network, tmp_path):
    data = canonical_dataset()
    figure = plot_truth_forecast_error(
        data.isel(time=[1]),
        data.isel(time=[1]) + 1.0,
        "temperature",
        level=850,
        projection="PlateCarree",
        gridlines=False,
    )
    save_figure(figure, tmp_path / "panels.png", dpi=50)
    assert len(_feature_artists(figure)) == 6  # coastlines and borders on each of 3 maps


def test_outlines_have_no_seams_and_finer_detail_at_50m():
    coarse, fine = outline_lines("110m"), outline_lines("50m")
    for lines in (coarse, fine):
        for kind in ("coastlines", "borders"):
            for line in lines[kind].geoms:
                points = np.asarray(line.coords)  # [n_points, 2]
                assert np.all(np.abs(points[:, 0]) <= 180.0 + 1e-6)
                # no segment jumps across the dateline or runs along it
                assert np.all(np.abs(np.diff(points[:, 0])) <= 180.0)
                along_dateline = (np.abs(np.abs(points[:-1, 0]) - 180) < 1e-3) & (
                    np.abs(np.abs(points[1:, 0]) - 180) < 1e-3
                )
                assert not along_dateline.any()
    count = lambda lines: sum(len(line.coords) for line in lines.geoms)
    assert count(fine["coastlines"]) > 5 * count(coarse["coastlines"])
    # The British Isles are drawn in some detail at 1:50m.
    british_isles = fine["coastlines"].intersection(
        __import__("shapely").box(-11.0, 49.5, 2.0, 61.0)
    )
    assert british_isles.length > 60.0  # degrees of coastline
    assert resolution_for_extent(None) == "110m"
    assert resolution_for_extent((-10, 2, 50, 58)) == "50m"


def test_missing_bundled_outlines_say_how_to_fix(monkeypatch, tmp_path):
    import stmodel.plot.offline_features as offline_features
    from stmodel.errors import UserError

    monkeypatch.setattr(
        offline_features,
        "_topology_file",
        lambda resolution: tmp_path / f"countries-{resolution}.json.gz",
    )
    with pytest.raises(UserError, match="bundled Natural Earth outlines are missing; reinstall"):
        offline_features.outline_lines.__wrapped__("110m")
