import numpy as np
import pandas as pd
import pytest
import xarray as xr
from data_styles import truth, write_weatherbench2

from stmodel.data.layout import VariableLayout
from stmodel.data.readers import open_canonical
from stmodel.data.statistics import (
    StatisticsRequest,
    compute_or_reuse,
    compute_statistics,
    normalisation_stats,
)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("stats") / "truth.nc"
    return open_canonical([write_weatherbench2(truth(n_times=40), path)])


def test_moments_match_numpy_with_small_chunks(dataset):
    request = StatisticsRequest("2001-01-02", "2001-01-09T12", dt_hours=12, time_chunk=7)
    stats, _ = compute_statistics(dataset, request, progress=False)
    period = dataset.sel(time=slice("2001-01-02", "2001-01-09T12"))
    for name in ("temperature", "2m_temperature"):
        x = period[name].values.astype(np.float64)
        axes = (0, 2, 3) if x.ndim == 4 else (0, 1, 2)
        np.testing.assert_allclose(stats[name].sel(statistic="mean"), x.mean(axes), rtol=1e-5)
        np.testing.assert_allclose(stats[name].sel(statistic="std"), x.std(axes), rtol=1e-5)
        diffs = x[2:] - x[:-2]  # 12 h apart at 6-hourly data
        np.testing.assert_allclose(
            stats[name].sel(statistic="diff_std"), diffs.std(axes), rtol=1e-5
        )


def test_climatology_by_hour_for_short_periods(dataset):
    _, clim = compute_statistics(
        dataset, StatisticsRequest("2001-01-01", "2001-01-10"), progress=False
    )
    assert clim.attrs["climatology_kind"] == "hour"
    period = dataset.sel(time=slice("2001-01-01", "2001-01-10"))
    expected = period["temperature"].groupby("time.hour").mean()
    np.testing.assert_allclose(clim["temperature"].values, expected.values, rtol=1e-6)


def test_climatology_by_day_of_year_for_several_years(tmp_path):
    times = pd.date_range("2001-01-01", "2002-12-31T18", freq="6h")
    t = 280 + 10 * np.sin(2 * np.pi * times.day_of_year.values / 365.25)
    ds = xr.Dataset(
        {
            "2m_temperature": (
                ("time", "lat", "lon"),
                np.broadcast_to(t[:, None, None], (len(t), 2, 4)).astype(np.float32),
            )
        },
        coords={"time": times, "lat": [-10.0, 10.0], "lon": [0.0, 90, 180, 270]},
    )
    ds = open_canonical([write_weatherbench2(ds, tmp_path / "two_years.nc")])
    _, clim = compute_statistics(
        ds, StatisticsRequest("2001-01-01", "2002-12-31T18", smoothing_days=5), progress=False
    )
    assert clim.attrs["climatology_kind"] == "dayofyear_hour"
    assert clim["2m_temperature"].dims == ("dayofyear", "hour", "lat", "lon")
    # Smoothing over 5 days of a sine with a 365-day period changes it by < 0.1 K.
    day100 = float(clim["2m_temperature"].sel(dayofyear=100, hour=6)[0, 0])
    assert abs(day100 - (280 + 10 * np.sin(2 * np.pi * 100 / 365.25))) < 0.1
    assert np.isfinite(clim["2m_temperature"].sel(dayofyear=366)).all()  # filled by smoothing


def test_written_files_are_reused_when_consistent(dataset, tmp_path):
    request = StatisticsRequest("2001-01-01", "2001-01-05")
    _, _, reused = compute_or_reuse(dataset, request, tmp_path, progress=False)
    assert not reused
    _, _, reused = compute_or_reuse(dataset, request, tmp_path, progress=False)
    assert reused
    other = StatisticsRequest("2001-01-01", "2001-01-06")
    _, _, reused = compute_or_reuse(dataset, other, tmp_path, progress=False)
    assert not reused


def test_normalisation_stats_layout(dataset):
    stats, _ = compute_statistics(
        dataset, StatisticsRequest("2001-01-01", "2001-01-05"), progress=False
    )
    layout = VariableLayout(
        upper_air=("geopotential", "temperature"),
        levels=(500, 850),
        surface=("2m_temperature",),
        constants=(),
    )
    norm = normalisation_stats(stats, layout)
    assert norm.upper_mean.shape == (2, 2) and norm.surface_std.shape == (1,)
    assert norm.upper_mean[1, 1] == pytest.approx(
        float(stats["temperature"].sel(statistic="mean", level=850))
    )
