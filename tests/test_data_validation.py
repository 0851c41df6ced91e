import numpy as np
import pytest
from data_styles import truth, write_cds, write_weatherbench2

from stmodel.data import validation
from stmodel.data.readers import open_canonical
from stmodel.errors import DataError


def _open(tmp_path, ds, name="input.nc"):
    return open_canonical([write_weatherbench2(ds, tmp_path / name)])


def test_clean_data_passes(tmp_path):
    ds = _open(tmp_path, truth())
    validation.validate(ds)
    validation.require_finite(ds)


def test_missing_variable_and_level(tmp_path):
    ds = _open(tmp_path, truth())
    with pytest.raises(DataError, match="missing variable.*specific_humidity"):
        validation.require_variables(ds, ["geopotential", "specific_humidity"])
    with pytest.raises(DataError, match=r"missing pressure level.*\[700\]"):
        validation.require_variables(ds, ["temperature"], levels=[500, 700])


def test_grids_differ_between_files(tmp_path):
    a = truth()[["temperature"]]
    b = truth()[["geopotential"]]
    b = b.assign_coords(lat=b["lat"] + 1.0)
    pa = write_weatherbench2(a, tmp_path / "a.nc")
    pb = write_weatherbench2(b, tmp_path / "b.nc")
    with pytest.raises(DataError, match=r"b\.nc: its lat grid .* differs from that of .*a\.nc"):
        open_canonical([pa, pb])


def test_irregular_grid(tmp_path):
    ds = truth()
    lat = ds["lat"].values.copy()
    lat[3] += 2.0
    with pytest.raises(DataError, match="lat is not regularly spaced"):
        validation.check_grid(_open(tmp_path, ds.assign_coords(lat=lat)))


def test_geopotential_height_detected(tmp_path):
    ds = truth()
    ds["geopotential"] = ds["geopotential"] / 9.80665
    with pytest.raises(DataError, match="geopotential.*looks like geopotential height"):
        validation.check_units(_open(tmp_path, ds))


def test_celsius_detected(tmp_path):
    ds = truth()
    ds["2m_temperature"] = ds["2m_temperature"] - 273.15
    with pytest.raises(DataError, match="2m_temperature.*degrees Celsius"):
        validation.check_units(_open(tmp_path, ds))


def test_duplicated_and_unsorted_times(tmp_path):
    ds = truth()
    times = ds["time"].values.copy()
    times[5] = times[4]
    with pytest.raises(DataError, match="duplicated time 2001-01-02T00:00"):
        validation.check_times(_open(tmp_path, ds.assign_coords(time=times), "dup.nc"))
    times = ds["time"].values.copy()
    times[[4, 5]] = times[[5, 4]]
    with pytest.raises(DataError, match="times are not sorted"):
        validation.check_times(_open(tmp_path, ds.assign_coords(time=times), "unsorted.nc"))


def test_nan_names_file_variable_and_first_time(tmp_path):
    ds = truth()
    good = write_weatherbench2(ds[["geopotential"]], tmp_path / "z.nc")
    bad_ds = ds[["temperature"]].copy(deep=True)
    bad_ds["temperature"][7, 1, 2, 3] = np.nan
    bad_ds["temperature"][9, 0, 0, 0] = np.inf
    bad = write_weatherbench2(bad_ds, tmp_path / "t.nc")
    merged = open_canonical([good, bad])
    with pytest.raises(
        DataError,
        match=r"t\.nc: variable temperature has NaN or Inf values "
        r"first at 2001-01-02T18:00",
    ):
        validation.require_finite(merged)


@pytest.mark.parametrize("content", [b"", b"CDF\x01garbage", b"\x89HDF\r\n\x1a\n" + b"\0" * 64])
def test_unreadable_or_truncated_file(tmp_path, content):
    path = tmp_path / "broken.nc"
    path.write_bytes(content)
    with pytest.raises(DataError, match=r"broken\.nc: cannot be read as a NetCDF file"):
        open_canonical([path])


def test_truncated_real_netcdf(tmp_path):
    full = write_cds(truth(), tmp_path / "full.nc")
    cut = tmp_path / "cut.nc"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(DataError, match=r"cut\.nc"):
        ds = open_canonical([cut])
        validation.require_finite(ds)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="nothere.nc: no such file"):
        open_canonical([tmp_path / "nothere.nc"])
