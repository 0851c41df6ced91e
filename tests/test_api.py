"""The public Python API (`import stmodel`), called as a user would: load the shipped
models, forecast from an xarray Dataset, evaluate, draw a map; the forecast is what
`stmodel forecast` writes for the same request, and mistakes end in a UserError."""

import subprocess
import sys

import matplotlib
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import stmodel
from stmodel.cli import main
from stmodel.data.readers import open_canonical
from stmodel.errors import UserError
from stmodel.models import DEFAULT_MODELS

matplotlib.use("Agg")

INITS = ["2000-01-04T00", "2000-01-04T12"]
LEAD = "30h"  # leads 6, 12, 18, 24 (one 24 h step) and 30 h


@pytest.fixture(scope="module")
def cli_forecast(tiny_simulated, tmp_path_factory):
    out = tmp_path_factory.mktemp("api") / "cli_forecast.nc"
    argv = ["forecast", "--data", str(tiny_simulated), "--init", *INITS, "--lead", LEAD]
    assert main([*argv, "--out", str(out), "--quiet"]) == 0
    return out


@pytest.fixture(scope="module")
def models():
    return [stmodel.load_model(name) for name in DEFAULT_MODELS]


@pytest.fixture(scope="module")
def api_forecast(tiny_simulated):
    with xr.open_dataset(tiny_simulated) as data:
        return stmodel.forecast(data, INITS, LEAD, progress=False)


def test_import_is_cheap_and_exports_the_api():
    heavy = "('jax', 'xarray', 'matplotlib')"
    code = f"import sys, stmodel; print(sorted(m for m in {heavy} if m in sys.modules))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert loaded.strip() == "[]"
    for name in ("load_model", "list_models", "forecast", "evaluate", "plot_map"):
        assert name in stmodel.__all__ and callable(getattr(stmodel, name))


def test_the_shipped_models_are_listed_and_load_by_name(models):
    listed = {m.name: m for m in stmodel.list_models()}
    assert set(DEFAULT_MODELS) <= set(listed)
    assert listed["stmodel-small-6h"].dt_hours == 6 and listed["stmodel-small-6h"].summary
    assert [m.dt_hours for m in models] == [listed[name].dt_hours for name in DEFAULT_MODELS]
    with pytest.raises(UserError, match="no-such-model.*stmodel-small-6h"):
        stmodel.load_model("no-such-model")


def test_a_forecast_from_a_dataset_is_what_the_cli_writes(api_forecast, cli_forecast):
    with xr.open_dataset(cli_forecast) as written:
        assert api_forecast.sizes == written.sizes
        assert list(api_forecast.dims) == [
            "time",
            "prediction_timedelta",
            "level",
            "latitude",
            "longitude",
        ]
        assert list(api_forecast.data_vars) == list(written.data_vars)
        xr.testing.assert_equal(api_forecast, written)  # coordinates and values, exactly
        for name, variable in written.variables.items():
            assert api_forecast[name].attrs == variable.attrs, name
            assert api_forecast[name].dtype == variable.dtype, name
        assert {k: v for k, v in api_forecast.attrs.items() if k != "source"} == {
            k: v for k, v in written.attrs.items() if k != "source"
        }
    hours = api_forecast["prediction_timedelta"].values / np.timedelta64(1, "h")
    assert hours.tolist() == [6, 12, 18, 24, 30]
    assert np.isfinite(api_forecast["geopotential"].values).all()


def test_era5_style_names_a_list_of_leads_and_loaded_models(tiny_simulated, models, cli_forecast):
    # As the Copernicus CDS names things: short names, valid_time, pressure_level,
    # latitude / longitude, latitude from north to south.
    with xr.open_dataset(tiny_simulated) as data:
        era5 = data.rename(
            time="valid_time",
            level="pressure_level",
            lat="latitude",
            lon="longitude",
            geopotential="z",
            temperature="t",
            u_component_of_wind="u",
            v_component_of_wind="v",
            surface_pressure="sp",
        ).isel(latitude=slice(None, None, -1))
        forecast = stmodel.forecast(
            era5,
            np.array(INITS, "datetime64[ns]"),
            [6, "1d", "30h"],
            models=[models[0], "stmodel-small-6h"],
            batch_size=1,
            progress=False,
        )
    with xr.open_dataset(cli_forecast) as written:
        wanted = written.sel(prediction_timedelta=np.array([6, 24, 30], "timedelta64[h]"))
        xr.testing.assert_equal(forecast, wanted)


def test_evaluate_gives_the_scores_of_stmodel_evaluate(
    api_forecast, cli_forecast, tiny_simulated, tmp_path
):
    with xr.open_dataset(tiny_simulated) as truth:
        scores = stmodel.evaluate(api_forecast, truth)
        table = stmodel.evaluate(api_forecast, truth, as_dataframe=True)
    name = "stmodel-24h+6h"
    assert scores.attrs["model_name"] == name
    z500 = scores["geopotential"].sel(level=500)
    assert z500.dims == ("metric", "forecast", "prediction_timedelta")
    assert list(z500["metric"].values) == ["rmse", "acc", "bias"]
    assert list(z500["forecast"].values) == [name, "persistence", "climatology"]
    rmse = z500.sel(metric="rmse", forecast=name)
    assert np.isfinite(rmse).all() and (rmse > 0).all()

    assert (
        main(
            ["evaluate", "--forecast", str(cli_forecast), "--truth", str(tiny_simulated)]
            + ["--out", str(tmp_path / "evaluation")]
        )
        == 0
    )
    written = pd.read_csv(tmp_path / "evaluation" / "scorecard.csv")
    assert list(table.columns) == list(written.columns)
    pd.testing.assert_frame_equal(
        table.reset_index(drop=True), written, check_dtype=False, rtol=1e-12
    )
    row = written.query(
        "variable == 'geopotential' and level == 500 and lead_hours == 30 "
        "and metric == 'rmse' and forecast == @name"
    )
    assert float(rmse.sel(prediction_timedelta=np.timedelta64(30, "h"))) == pytest.approx(
        float(row["value"].iloc[0]), rel=1e-12
    )


def test_evaluate_without_earlier_truth_scores_rmse_only(api_forecast, tiny_simulated):
    with xr.open_dataset(tiny_simulated) as truth:
        scores = stmodel.evaluate(api_forecast, truth.sel(time=slice("2000-01-04", None)))
    assert list(scores["metric"].values) == ["rmse", "bias"]
    assert "climatology" not in scores["forecast"].values
    assert "ACC" in scores.attrs["notes"]


def test_plot_a_forecast_map_to_png(api_forecast, tiny_simulated, tmp_path):
    figure = stmodel.plot_map(
        api_forecast, "geopotential", level=500, time=0, lead=30, path=tmp_path / "z500.png"
    )
    assert figure.axes
    assert (tmp_path / "z500.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    truth = open_canonical(tiny_simulated)
    stmodel.plot_truth_forecast_error(
        truth, api_forecast, "temperature", level=850, time=0, lead=30, path=tmp_path / "t850.png"
    )
    assert (tmp_path / "t850.png").stat().st_size > 0


@pytest.mark.parametrize(
    ("leads", "message"),
    [
        ("-6h", "leads '-6h': expected a positive whole number of hours or days"),
        ("ten days", "leads 'ten days': expected a positive whole number"),
        ("9h", r"leads '9h': expected a multiple of the shortest model step \(6 h\)"),
        ([6, 15], "leads: 15 h cannot be reached with model steps of \\[6, 24\\] h"),
        ([], "leads=\\[\\]: expected a lead"),
    ],
)
def test_a_wrong_lead_is_a_user_error(tiny_simulated, models, leads, message):
    with xr.open_dataset(tiny_simulated) as data:
        with pytest.raises(UserError, match=message):
            stmodel.forecast(data, INITS, leads, models=models, progress=False)


def test_a_missing_variable_or_time_is_a_user_error_naming_it(tiny_simulated, models):
    with xr.open_dataset(tiny_simulated) as data:
        with pytest.raises(UserError, match="missing variable.*temperature"):
            stmodel.forecast(data.drop_vars("temperature"), INITS, 6, models=models)
        with pytest.raises(UserError, match="2001-01-01T00.*not in the data"):
            stmodel.forecast(data, "2001-01-01T00", 6, models=models, progress=False)
        with pytest.raises(UserError, match="init_times 'yesterday': expected a time"):
            stmodel.forecast(data, "yesterday", 6, models=models)
    with pytest.raises(UserError, match="data: expected an xarray Dataset"):
        stmodel.forecast(42, INITS, 6, models=models)
    with pytest.raises(UserError, match="models\\[0\\]=3: expected a model name"):
        stmodel.forecast(xr.Dataset(), INITS, 6, models=[3])
