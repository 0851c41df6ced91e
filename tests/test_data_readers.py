import numpy as np
import pytest
import xarray as xr
from data_styles import truth, write_cds, write_graphcast, write_lon180, write_weatherbench2

from stmodel.data.readers import open_canonical


@pytest.fixture(scope="module")
def expected():
    return truth()


def _assert_canonical(ds):
    assert list(ds["lat"].values) == sorted(ds["lat"].values)
    assert list(ds["level"].values) == sorted(ds["level"].values)
    assert ds["lon"].min() >= 0 and ds["lon"].max() < 360
    for name in ds.data_vars:
        assert ds[name].dtype == np.float32
        known = [d for d in ds[name].dims if d in ("time", "level", "lat", "lon")]
        assert known == [d for d in ("time", "level", "lat", "lon") if d in known]
        assert list(ds[name].dims[-len(known) :]) == known  # other dims lead


@pytest.mark.parametrize("writer", [write_cds, write_weatherbench2, write_graphcast, write_lon180])
def test_every_style_reads_to_the_same_canonical_data(tmp_path, expected, writer):
    path = writer(expected, tmp_path / "input.nc")
    ds = open_canonical([path])
    _assert_canonical(ds)
    xr.testing.assert_allclose(ds.drop_attrs(), expected.drop_attrs(), rtol=1e-6)


def test_packed_int16_cds_is_unpacked(tmp_path, expected):
    ds = open_canonical([write_cds(expected, tmp_path / "packed.nc", packed=True)])
    for name in expected.data_vars:
        span = float(expected[name].max() - expected[name].min())
        np.testing.assert_allclose(ds[name].values, expected[name].values, atol=span / 65000 + 1e-3)


def test_zarr_store(tmp_path, expected):
    ds = open_canonical([write_weatherbench2(expected, tmp_path / "wb2.zarr")])
    xr.testing.assert_allclose(ds.drop_attrs(), expected.drop_attrs())


def test_one_file_per_variable_and_per_year(tmp_path, expected):
    paths = []
    for name in expected.data_vars:
        for part, times in enumerate((slice(0, 6), slice(6, None))):
            path = tmp_path / f"{name}_{part}.nc"
            write_cds(expected[[name]].isel(time=times), path)
            paths.append(path)
    ds = open_canonical(list(reversed(paths)))  # order of arguments must not matter
    xr.testing.assert_allclose(ds.drop_attrs(), expected.drop_attrs(), rtol=1e-6)


def test_glob(tmp_path, expected):
    for name in expected.data_vars:
        write_weatherbench2(expected[[name]], tmp_path / f"part_{name}.nc")
    ds = open_canonical([str(tmp_path / "part_*.nc")])
    assert set(ds.data_vars) == set(expected.data_vars)


def test_opening_is_lazy(tmp_path, expected):
    ds = open_canonical([write_cds(expected, tmp_path / "lazy.nc")])
    assert all(var.chunks is not None for var in ds.data_vars.values())


def test_real_era_interim(shared_real):
    ds = open_canonical([shared_real / "eraint_uvz.nc"])
    _assert_canonical(ds)
    assert set(ds.data_vars) == {"geopotential", "u_component_of_wind", "v_component_of_wind"}
    assert ds["lon"].values[0] == 0.0 and ds["lat"].values[0] == -90.0
    raw = xr.open_dataset(shared_real / "eraint_uvz.nc")
    # Same numbers at a known point: 500 hPa, 45N, 9W (= 351E), January.
    np.testing.assert_allclose(
        ds["geopotential"].sel(month=1, level=500, lat=45, lon=351).values,
        raw["z"].sel(month=1, level=500, latitude=45, longitude=-9).values,
        rtol=1e-6,
    )


def test_real_era5_regional_crossing_meridian(shared_real):
    ds = open_canonical([shared_real / "era5_t2m_uk_2019-03.nc"])
    assert list(ds.data_vars) == ["2m_temperature"]
    lon = ds["lon"].values
    assert lon[0] == -10.0 and lon[-1] == 2.0 and np.all(np.diff(lon) > 0)
    assert ds.sizes == {"time": 744, "lat": 33, "lon": 49}


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_a_missing_zarr_chunk_is_missing_data_not_zeros(tmp_path, expected, zarr_format, capsys):
    from stmodel.cli import main

    store = tmp_path / "gap.zarr"
    # No fill value: zarr reads an absent chunk as 0 (0 K, a passable number).
    encoding = {name: {"_FillValue": None} for name in expected.data_vars}
    expected.chunk(time=1).to_zarr(store, encoding=encoding, zarr_format=zarr_format)
    chunk = "temperature/3.0.0.0" if zarr_format == 2 else "temperature/c/3/0/0/0"
    (store / chunk).unlink()
    ds = open_canonical([store])
    assert np.isnan(ds["temperature"].isel(time=3)).all()
    assert np.isfinite(ds["temperature"].isel(time=[2, 4])).all()
    assert np.isfinite(ds["geopotential"]).all()
    assert main(["data", "check", str(store), "--quiet"]) == 2
    out = capsys.readouterr()
    assert "temperature has NaN or Inf values first at 2001-01-01T18:00" in out.out + out.err
