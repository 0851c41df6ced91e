import json
import subprocess
import sys

import xarray as xr
from data_styles import truth, write_cds, write_weatherbench2

from stmodel.cli import main


def test_help_explains_every_data_command(capsys):
    for command in ("check", "convert", "stats"):
        try:
            main(["data", command, "--help"])
        except SystemExit as stop:
            assert stop.code == 0
        assert "usage: stmodel data " + command in capsys.readouterr().out


def test_convert_cds_and_weatherbench2_give_identical_files(tmp_path):
    ds = truth()
    cds = write_cds(ds, tmp_path / "cds.nc")
    wb2 = write_weatherbench2(ds, tmp_path / "wb2.nc")
    assert main(["data", "convert", str(cds), "--out", str(tmp_path / "a.nc")]) == 0
    assert main(["data", "convert", str(wb2), "--out", str(tmp_path / "b.nc")]) == 0
    a = xr.load_dataset(tmp_path / "a.nc")
    b = xr.load_dataset(tmp_path / "b.nc")
    for out in (a, b):
        del out.attrs["stmodel_converted_from"]
    xr.testing.assert_identical(a, b)
    assert a["temperature"].dims == ("time", "level", "lat", "lon")
    assert a["temperature"].dtype == "float32" and a["temperature"].attrs["units"] == "K"
    xr.testing.assert_equal(a.drop_attrs(), ds.drop_attrs())


def test_check_prints_summary_and_json(tmp_path, capsys):
    path = write_cds(truth(), tmp_path / "cds.nc")
    assert main(["data", "check", str(path)]) == 0
    out = capsys.readouterr().out
    assert "geopotential" in out and "problems: none" in out and "8 lat x 16 lon" in out
    assert main(["data", "check", "--json", str(path)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["levels_hpa"] == [50, 500, 850, 1000] and summary["time"]["count"] == 12


def test_check_reports_problems_with_exit_code_2(tmp_path, capsys):
    ds = truth()
    ds["temperature"] = ds["temperature"] - 273.15
    path = write_weatherbench2(ds, tmp_path / "celsius.nc")
    assert main(["data", "check", str(path)]) == 2
    assert "degrees Celsius" in capsys.readouterr().out


def test_stats_command(tmp_path, capsys):
    path = write_cds(truth(n_times=20), tmp_path / "cds.nc")
    args = [
        "data",
        "stats",
        str(path),
        "--out",
        str(tmp_path / "stats"),
        "--train-period",
        "2001-01-01/2001-01-04",
        "--quiet",
    ]
    assert main(args) == 0
    assert "wrote" in capsys.readouterr().out
    assert main(args) == 0
    assert "reused" in capsys.readouterr().out
    stats = xr.load_dataset(tmp_path / "stats" / "stats.nc")
    assert stats["geopotential"].dims == ("statistic", "level")


def test_user_errors_exit_2_without_traceback_and_write_nothing(tmp_path):
    ds = truth()
    ds["geopotential"] = ds["geopotential"] / 9.80665
    path = write_weatherbench2(ds, tmp_path / "height.nc")
    out = tmp_path / "out.nc"
    result = subprocess.run(
        [sys.executable, "-m", "stmodel", "data", "convert", str(path), "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "height.nc" in result.stderr and "geopotential height" in result.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == [path]
