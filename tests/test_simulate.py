"""Tests of the built-in simulated reanalysis (stmodel.simulation)."""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import os
import signal

import numpy as np
import pytest
import xarray as xr

from stmodel.cli import main
from stmodel.commands import data_generate
from stmodel.data import canonical
from stmodel.errors import UserError
from stmodel.simulation import dynamics, reanalysis, spun_up
from stmodel.simulation.levels import interpolate_to_pressure, make_frame_fn
from stmodel.simulation.presets import PRESETS, SimulationPreset, get_preset
from stmodel.simulation.workdir import WorkDirectory

TINY = PRESETS["tiny"]
DINOSAUR_VERSION = importlib.metadata.version("dinosaur")


@pytest.fixture(scope="module")
def tiny_file(tiny_simulated):
    """The tiny preset, generated once for the session (conftest)."""
    return tiny_simulated


@pytest.fixture(scope="module")
def tiny(tiny_file):
    with xr.open_dataset(tiny_file) as dataset:
        yield dataset.load()


# Canonical form and attributes.


@pytest.mark.slow
def test_tiny_file_is_canonical(tiny):
    assert tuple(tiny["geopotential"].dims) == canonical.DIMS
    for name in (
        "surface_pressure",
        "lowest_model_level_temperature",
        "lowest_model_level_u_component_of_wind",
        "lowest_model_level_v_component_of_wind",
    ):
        assert tiny[name].dims == ("time", "lat", "lon")
    assert tiny["level"].values.tolist() == list(canonical.WEATHERBENCH_LEVELS)
    assert np.issubdtype(tiny["level"].dtype, np.integer)
    k = np.arange(16)
    expected_latitudes = np.concatenate([-(2.8125 + 5.625 * k[::-1]), 2.8125 + 5.625 * k])
    np.testing.assert_allclose(tiny["lat"].values, expected_latitudes, atol=1e-9)
    np.testing.assert_allclose(tiny["lon"].values, 5.625 * np.arange(64), atol=1e-9)
    expected_times = np.datetime64("2000-01-01T00") + np.arange(20) * np.timedelta64(6, "h")
    np.testing.assert_array_equal(tiny["time"].values, expected_times.astype("datetime64[ns]"))
    for name, variable in tiny.data_vars.items():
        assert variable.dtype == np.float32, name
        assert variable.attrs["units"] == canonical.UNITS[name], name
        assert variable.attrs["long_name"], name
    for name, axis, units in (
        ("level", "Z", "hPa"),
        ("lat", "Y", "degrees_north"),
        ("lon", "X", "degrees_east"),
    ):
        assert tiny[name].attrs["axis"] == axis
        assert tiny[name].attrs["units"] == units
        assert tiny[name].attrs["standard_name"]
    assert tiny["time"].attrs["axis"] == "T"


@pytest.mark.slow
def test_tiny_file_provenance_and_periods(tiny):
    attrs = tiny.attrs
    assert attrs["Conventions"].startswith("CF-")
    assert attrs["preset"] == "tiny"
    assert attrs["seed"] == TINY.seed
    assert attrs["spinup_days"] == TINY.spinup_days
    assert attrs["spinup_source"] == reanalysis.SPINUP_FROM_REST  # no state shipped for tiny
    for key in ("generator", "dinosaur_version", "resolution", "creation_command", "history"):
        assert attrs[key], key
    # The planet's exact symmetries, which training augmentation relies on.
    assert attrs["symmetries"].split() == ["longitude_roll", "north_south_mirror"]
    assert set(attrs["north_south_mirror_sign_flip"].split()) == {
        "v_component_of_wind",
        "lowest_model_level_v_component_of_wind",
    }
    periods = [attrs[f"{name}_period"].split("/") for name in ("train", "validation", "test")]
    assert periods == [
        list(TINY.train_period),
        list(TINY.validation_period),
        list(TINY.test_period),
    ]
    # The three periods partition the time axis exactly.
    counts = [tiny.sel(time=slice(first, f"{last}T23:59")).sizes["time"] for first, last in periods]
    assert counts == [8, 4, 8]


@pytest.mark.slow
def test_tiny_file_values_are_physical(tiny):
    for name, variable in tiny.data_vars.items():
        assert np.isfinite(variable.values).all(), name
    assert 150.0 < float(tiny["temperature"].min()) and float(tiny["temperature"].max()) < 350.0
    surface_pressure = tiny["surface_pressure"].values
    assert 9.0e4 < surface_pressure.min() and surface_pressure.max() < 1.1e5
    # Hydrostatic: geopotential rises strictly from 1000 hPa up to 50 hPa in every column.
    geopotential = tiny["geopotential"].values  # [time, level (hPa ascending), lat, lon]
    assert (np.diff(geopotential, axis=1) < 0).all()
    # ~5.6 km at 500 hPa in a 288 K isothermal start.
    z500 = tiny["geopotential"].sel(level=500).mean().item()
    assert 5.0e4 < z500 < 6.0e4


# Reuse, resume and user errors.


@pytest.mark.slow
def test_existing_file_of_the_same_preset_is_reused(tiny_file):
    modified = tiny_file.stat().st_mtime_ns
    assert reanalysis.generate("tiny", tiny_file, progress=False) == tiny_file
    assert tiny_file.stat().st_mtime_ns == modified


@pytest.mark.slow
def test_interrupted_run_resumes_from_finished_chunks(tiny, tmp_path, monkeypatch):
    out = tmp_path / "resumed.nc"
    original_save_chunk = WorkDirectory.save_chunk

    def save_then_interrupt(self, index, frames, state):
        original_save_chunk(self, index, frames, state)
        if index == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(WorkDirectory, "save_chunk", save_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        reanalysis.generate("tiny", out, progress=False)
    monkeypatch.setattr(WorkDirectory, "save_chunk", original_save_chunk)

    work = tmp_path / "resumed.nc.work"
    assert not out.exists()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["resumed.nc.work"]
    assert sorted(path.name for path in work.iterdir()) == [
        "chunk-00000.npz",
        "chunk-00001.npz",
        "manifest.json",
        "spinup.npz",
        "spinup_source.txt",
    ]

    simulated_days = []
    original_output_day_fn = reanalysis._output_day_fn

    def counting_output_day_fn(*args):
        advance = original_output_day_fn(*args)

        def counted(state):
            simulated_days.append(1)
            return advance(state)

        return counted

    monkeypatch.setattr(reanalysis, "_output_day_fn", counting_output_day_fn)
    reanalysis.generate("tiny", out, progress=False)
    # No spin-up again, only the three missing output days.
    assert len(simulated_days) == 3
    assert not work.exists()
    with xr.open_dataset(out) as resumed:
        for name in tiny.data_vars:
            np.testing.assert_array_equal(resumed[name].values, tiny[name].values, err_msg=name)


@pytest.mark.slow
def test_spinup_at_another_time_step_hands_over_to_the_output_run(tmp_path):
    preset = dataclasses.replace(
        TINY,
        name="two-stage",
        time_step_minutes=30.0,
        spinup_days=1,
        spinup_time_step_minutes=60.0,
        adjustment_days=1,
        train_period=("2000-01-01", "2000-01-01"),
        validation_period=("2000-01-02", "2000-01-02"),
        test_period=("2000-01-03", "2000-01-03"),
    )
    assert preset.separate_spinup
    out = reanalysis.generate(preset, tmp_path / "two-stage.nc", progress=False)
    with xr.open_dataset(out) as dataset:
        assert dataset.attrs["spinup_days"] == 2
        assert "60 min" in dataset.attrs["spinup"] and "30 min" in dataset.attrs["spinup"]
        assert dataset.sizes["time"] == 12
        assert np.isfinite(dataset["geopotential"].values).all()


def test_unknown_preset_is_a_user_error(tmp_path):
    with pytest.raises(
        UserError, match="unknown simulation preset 'huge'.*tiny, default, pretrain, hires"
    ):
        reanalysis.generate("huge", tmp_path / "x.nc", progress=False)


def test_missing_directory_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        reanalysis.generate("tiny", tmp_path / "missing" / "x.nc", progress=False)
    with pytest.raises(UserError, match="is a directory"):
        reanalysis.generate("tiny", tmp_path, progress=False)


def test_foreign_existing_file_is_not_overwritten(tmp_path):
    out = tmp_path / "other.nc"
    xr.Dataset({"x": ("t", np.zeros(3, np.float32))}).to_netcdf(out)
    with pytest.raises(UserError, match="--overwrite"):
        reanalysis.generate("tiny", out, progress=False)
    assert xr.open_dataset(out)["x"].size == 3
    assert not (tmp_path / "other.nc.work").exists()


def test_work_directory_of_another_preset_is_discarded(tmp_path):
    work = WorkDirectory(tmp_path / "x.nc.work", "fingerprint-a")
    assert work.open() is False
    work.save_chunk(0, {"a": np.zeros(2)}, {"vorticity": np.zeros(2)})
    assert WorkDirectory(work.path, "fingerprint-a").open() is True
    assert WorkDirectory(work.path, "fingerprint-b").open() is False
    assert WorkDirectory(work.path, "fingerprint-b").finished_chunks() == 0


def test_cli_reports_unknown_preset_as_user_error(tmp_path):
    parser = argparse.ArgumentParser()
    data_generate.register(parser.add_subparsers())
    args = parser.parse_args(["generate", "--preset", "huge", "--out", str(tmp_path / "x.nc")])
    with pytest.raises(UserError, match="unknown simulation preset"):
        args.func(args)


@pytest.mark.slow
def test_seed_gives_another_trajectory_of_the_same_planet(tiny, tmp_path):
    out = tmp_path / "seed7.nc"
    assert (
        main(
            [
                "data",
                "generate",
                "--preset",
                "tiny",
                "--seed",
                "7",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    with xr.open_dataset(out) as other:
        assert other.attrs["seed"] == 7
        z500 = other["geopotential"].sel(level=500)
        assert not np.allclose(z500.values, tiny["geopotential"].sel(level=500).values)
        # Same climate: the zonal-mean Z500 of the two runs agrees closely.
        np.testing.assert_allclose(
            z500.mean(["time", "lon"]),
            tiny["geopotential"].sel(level=500).mean(["time", "lon"]),
            rtol=2e-3,
        )


# Presets.


def test_presets_cover_the_requested_periods():
    default = get_preset("default")
    assert default.output_days >= 365 + 59 + 61
    assert default.spinup_days >= 200
    pretrain = get_preset("pretrain")  # several years, on another trajectory than default's
    assert pretrain.output_days >= 4 * 365 and pretrain.seed != default.seed
    hires = get_preset("hires")
    assert hires.output_days >= 60
    assert (hires.output_latitudes, hires.output_longitudes) == (64, 128)
    assert get_preset(default) is default
    with pytest.raises(ValueError, match="without gaps"):
        dataclasses.replace(default, validation_period=("2001-01-02", "2001-02-28"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        default.seed = 3  # type: ignore[misc]
    assert isinstance(default, SimulationPreset)


# Vertical interpolation and spectral transfer, against closed forms.


def test_interpolation_to_pressure_matches_hydrostatic_closed_form():
    gas_constant, gravity = 287.0, 9.81
    sigma = (np.arange(24) + 0.5) / 24  # dinosaur's equidistant centres
    surface_pressure = np.array([[1.03e5, 0.97e5]], np.float32)  # [lat, lon]
    # Temperature linear in ln(sigma): T = a + b ln(sigma); exact hydrostatic geopotential
    # from a flat surface: Phi = -R (a ln(sigma) + b ln(sigma)^2 / 2).
    a, b = 290.0, 30.0
    log_sigma = np.log(sigma)[:, None, None] * np.ones((1, 1, 2))  # [sigma, lat, lon]
    temperature = a + b * log_sigma
    exact_geopotential = -gas_constant * (a * log_sigma + 0.5 * b * log_sigma**2)
    levels_pa = 100.0 * np.array(canonical.WEATHERBENCH_LEVELS, np.float64)
    level_temperature, level_geopotential, (level_u,) = interpolate_to_pressure(
        temperature.astype(np.float32),
        exact_geopotential.astype(np.float32),
        (temperature.astype(np.float32),),
        surface_pressure,
        sigma,
        levels_pa,
        gas_constant,
        gravity,
    )
    target = np.log(levels_pa[:, None, None] / surface_pressure[None])  # [level, lat, lon]
    inside = (target >= np.log(sigma[0])) & (target <= np.log(sigma[-1]))
    np.testing.assert_allclose(
        np.asarray(level_temperature)[inside], (a + b * target)[inside], rtol=1e-5
    )
    np.testing.assert_allclose(
        np.asarray(level_geopotential)[inside],
        (-gas_constant * (a * target + 0.5 * b * target**2))[inside],
        rtol=2e-3,
        atol=1.0,
    )
    # Under a 970 hPa surface, 1000 hPa lies below the lowest level (sigma 0.979) and
    # the ground: lapse-rate extrapolation from the lowest level, winds held.
    below = ~inside
    assert below[-1, 0, 1] and not below[-1, 0, 0]
    t_lowest = a + b * np.log(sigma[-1])
    ratio = np.exp(target - np.log(sigma[-1]))
    exponent = gas_constant * 6.5e-3 / gravity
    np.testing.assert_allclose(
        np.asarray(level_temperature)[below], (t_lowest * ratio**exponent)[below], rtol=1e-5
    )
    np.testing.assert_allclose(
        np.asarray(level_u)[below], np.full(below.sum(), t_lowest), rtol=1e-5
    )
    phi_lowest = exact_geopotential[-1, 0, 0]
    expected_phi = phi_lowest - gravity * t_lowest / 6.5e-3 * (ratio**exponent - 1.0)
    np.testing.assert_allclose(
        np.asarray(level_geopotential)[below], expected_phi[below], rtol=1e-3, atol=1.0
    )


def test_transfer_to_finer_truncation_and_back_is_exact():
    coarse = dynamics.build_model(21, 4, 30.0)
    fine = dynamics.build_model(42, 4, 30.0)
    state = dynamics.initial_state(coarse, seed=1, perturbation_pa=5e3)
    there = dynamics.transfer_state(state, coarse, fine)
    back = dynamics.transfer_state(there, fine, coarse)
    # float32 round-off of the mean coefficient (~159) sets the tolerance.
    np.testing.assert_allclose(
        np.asarray(back.log_surface_pressure), np.asarray(state.log_surface_pressure), atol=5e-5
    )
    # The same physical field on the fine grid: equal nodal values at the fine nodes.
    fine_nodal = fine.coords.horizontal.to_nodal(there.log_surface_pressure)
    coarse_at_fine_nodes = dataclasses.replace(
        coarse.coords.horizontal, longitude_nodes=128, latitude_nodes=64
    ).to_nodal(state.log_surface_pressure)
    np.testing.assert_allclose(np.asarray(fine_nodal), np.asarray(coarse_at_fine_nodes), atol=5e-5)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_during_the_spin_up_saves_and_exits_with_128_plus_the_signal(
    tiny, tmp_path, monkeypatch, capsys, signum
):
    handler_before = signal.getsignal(signal.SIGINT)
    out = tmp_path / "stopped.nc"
    original_save_spinup = WorkDirectory.save_spinup
    saves = []

    def save_then_signal(self, *args):
        original_save_spinup(self, *args)
        saves.append(args[:2])
        if len(saves) == 1:
            os.kill(os.getpid(), signum)  # as Ctrl-C or a scheduler would, mid-spin-up

    monkeypatch.setattr(WorkDirectory, "save_spinup", save_then_signal)
    argv = ["data", "generate", "--preset", "tiny", "--out", str(out), "--quiet"]
    assert main(argv) == 128 + signum
    error = capsys.readouterr().err.strip()
    assert "Traceback" not in error and "run the same command to resume" in error
    assert not out.exists() and (tmp_path / "stopped.nc.work" / "spinup.npz").exists()
    assert signal.getsignal(signal.SIGINT) == handler_before  # put back as it was
    monkeypatch.setattr(WorkDirectory, "save_spinup", original_save_spinup)
    assert main(argv) == 0  # resumes from the saved spin-up day
    with xr.open_dataset(out) as resumed:
        xr.testing.assert_equal(resumed.drop_attrs(), tiny.drop_attrs())


# Shipped spun-up states.


@pytest.fixture
def spun_up_directory(tmp_path, monkeypatch):
    """An empty directory of shipped states, in place of stmodel/simulation/spun_up/."""
    directory = tmp_path / "spun_up"
    directory.mkdir()
    monkeypatch.setattr(spun_up, "SPUN_UP_DIRECTORY", directory)
    return directory


def _zero_state(preset: SimulationPreset) -> dict[str, np.ndarray]:
    model = dynamics.build_model(preset.truncation, preset.sigma_layers, preset.time_step_minutes)
    return {
        name: np.zeros(value.shape, np.float32)
        for name, value in dynamics.state_to_arrays(dynamics.initial_state(model, 0, 0.0)).items()
    }


@pytest.mark.slow
def test_a_saved_spun_up_state_starts_the_run_with_the_same_numbers_as_rest(
    tiny, tmp_path, spun_up_directory, monkeypatch
):
    """tiny: 3 days from rest then 5 written days == the saved day-3 state then 5 days."""
    saved = spun_up_directory / "tiny_seed0.npz"
    argv = ["data", "generate", "--preset", "tiny", "--save-spun-up", str(saved), "--quiet"]
    assert main(argv) == 0
    assert sorted(path.name for path in spun_up_directory.iterdir()) == ["tiny_seed0.npz"]
    state = spun_up.read_spun_up_state(saved)
    assert state.provenance["preset"] == "tiny"
    assert state.settings == spun_up.spinup_settings(TINY, DINOSAUR_VERSION)

    def no_spin_up(*args, **kwargs):
        raise AssertionError("spun up from rest although a saved state matches")

    monkeypatch.setattr(reanalysis, "_spin_up", no_spin_up)
    out = reanalysis.generate("tiny", tmp_path / "from_saved.nc", progress=False)
    with xr.open_dataset(out) as started:
        # Data, coordinates and their attributes, bit for bit.
        xr.testing.assert_identical(started.drop_attrs(deep=False), tiny.drop_attrs(deep=False))
        assert set(started.attrs) == set(tiny.attrs)
        differing = {key for key in tiny.attrs if started.attrs[key] != tiny.attrs[key]}
        # history and creation_command hold the time of writing and the output path.
        assert differing - {"history", "creation_command"} == {"spinup_source"}
        source = started.attrs["spinup_source"]
        assert "tiny_seed0.npz" in source and state.sha256 in source
        assert "spin-up was not integrated again" in source
    # Another seed of the same preset is another trajectory: from rest, not the saved state.
    with pytest.raises(AssertionError, match="spun up from rest"):
        reanalysis.generate(
            dataclasses.replace(TINY, seed=7), tmp_path / "seed7.nc", progress=False
        )


@pytest.mark.slow
def test_a_run_resumed_after_starting_from_a_saved_state_keeps_its_provenance(
    tiny, tmp_path, spun_up_directory, monkeypatch
):
    saved = reanalysis.save_spun_up_state("tiny", spun_up_directory / "tiny.npz", progress=False)
    out = tmp_path / "resumed.nc"
    original_save_chunk = WorkDirectory.save_chunk

    def save_then_interrupt(self, index, frames, state):
        original_save_chunk(self, index, frames, state)
        if index == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(WorkDirectory, "save_chunk", save_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        reanalysis.generate("tiny", out, progress=False)
    monkeypatch.setattr(WorkDirectory, "save_chunk", original_save_chunk)
    saved.unlink()  # the resumed run must take the provenance from its work directory
    reanalysis.generate("tiny", out, progress=False)
    with xr.open_dataset(out) as resumed:
        assert "tiny.npz" in resumed.attrs["spinup_source"]
        xr.testing.assert_identical(resumed.drop_attrs(deep=False), tiny.drop_attrs(deep=False))


def test_only_a_run_with_the_same_spin_up_settings_starts_from_a_saved_state(
    spun_up_directory, monkeypatch
):
    spun_up.write_spun_up_state(
        spun_up_directory / "tiny.npz",
        TINY,
        DINOSAUR_VERSION,
        _zero_state(TINY),
        command="test",
        seconds=0.0,
    )
    found = spun_up.find_spun_up_state(TINY, DINOSAUR_VERSION)
    assert found is not None and found.path == spun_up_directory / "tiny.npz"
    # Name, periods and chunking do not change the spin-up.
    same_spin_up = dataclasses.replace(
        TINY,
        name="renamed",
        train_period=("2000-01-01", "2000-01-03"),
        validation_period=("2000-01-04", "2000-01-04"),
        test_period=("2000-01-05", "2000-01-06"),
        chunk_days=2,
    )
    assert spun_up.find_spun_up_state(same_spin_up, DINOSAUR_VERSION) is not None
    other_spin_ups = {
        "seed": dataclasses.replace(TINY, seed=1),
        "spinup_days": dataclasses.replace(TINY, spinup_days=4),
        "time_step_minutes": dataclasses.replace(TINY, time_step_minutes=30.0),
        "truncation": dataclasses.replace(TINY, truncation=42),
        "sigma_layers": dataclasses.replace(TINY, sigma_layers=12),
        "perturbation": dataclasses.replace(TINY, surface_pressure_perturbation_pa=4.0e3),
        "spinup_time_step": dataclasses.replace(TINY, spinup_time_step_minutes=30.0),
        "spinup_truncation": dataclasses.replace(TINY, spinup_truncation=42, adjustment_days=1),
        "output_grid": dataclasses.replace(TINY, output_latitudes=64, output_longitudes=128),
    }
    for what, preset in other_spin_ups.items():
        assert spun_up.find_spun_up_state(preset, DINOSAUR_VERSION) is None, what
    assert spun_up.find_spun_up_state(TINY, "0.0.1") is None
    monkeypatch.setattr(dynamics, "FILTER_TAU", 2 * dynamics.FILTER_TAU)
    assert spun_up.find_spun_up_state(TINY, DINOSAUR_VERSION) is None


def test_an_unreadable_spun_up_state_is_a_user_error_naming_the_file(spun_up_directory):
    path = spun_up_directory / "broken.npz"
    path.write_text("not a zip file")
    with pytest.raises(UserError, match=r"cannot read the spun-up state .*broken\.npz"):
        spun_up.find_spun_up_state(TINY, DINOSAUR_VERSION)
    np.savez(path, vorticity=np.zeros(3, np.float32))
    with pytest.raises(UserError, match=r"broken\.npz has no readable 'metadata' entry"):
        spun_up.find_spun_up_state(TINY, DINOSAUR_VERSION)
    spun_up.write_spun_up_state(
        path, TINY, DINOSAUR_VERSION, _zero_state(TINY), command="test", seconds=0.0
    )
    with np.load(path) as saved:
        contents = dict(saved)
    contents["vorticity"] = contents["vorticity"].astype(np.float64)
    np.savez(path, **contents)
    wrong_dtype = r"broken\.npz holds vorticity as float64; expected float32"
    with pytest.raises(UserError, match=wrong_dtype):
        spun_up.find_spun_up_state(TINY, DINOSAUR_VERSION)


def test_save_spun_up_needs_exactly_one_output_and_keeps_an_existing_file(tmp_path, capsys):
    assert main(["data", "generate", "--preset", "tiny"]) == 2
    error = capsys.readouterr().err
    assert "exactly one of --out PATH (write the data) and --save-spun-up" in error
    argv = ["data", "generate", "--preset", "tiny", "--out", str(tmp_path / "x.nc")]
    assert main([*argv, "--save-spun-up", str(tmp_path / "x.npz")]) == 2
    assert "exactly one of" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
    existing = tmp_path / "existing.npz"
    existing.write_bytes(b"keep")
    with pytest.raises(UserError, match="existing.npz exists.*--overwrite"):
        reanalysis.save_spun_up_state("tiny", existing, progress=False)
    assert existing.read_bytes() == b"keep"


def test_the_shipped_state_starts_the_default_preset_and_no_other_seed():
    default = get_preset("default")
    shipped = spun_up.find_spun_up_state(default, DINOSAUR_VERSION)
    assert shipped is not None, (
        "no shipped spun-up state matches the default preset: regenerate it with "
        "`stmodel data generate --preset default --overwrite "
        "--save-spun-up stmodel/simulation/spun_up/default_seed0.npz`"
    )
    assert shipped.path == spun_up.SPUN_UP_DIRECTORY / "default_seed0.npz"
    assert shipped.provenance["preset"] == "default"
    assert shipped.settings["seed"] == 0 and shipped.settings["stages"] == [[21, 60.0, 200]]
    assert shipped.path.stat().st_size < 1_000_000
    other_seed = dataclasses.replace(default, seed=7)
    assert spun_up.find_spun_up_state(other_seed, DINOSAUR_VERSION) is None
    assert spun_up.find_spun_up_state(get_preset("pretrain"), DINOSAUR_VERSION) is None
    assert spun_up.find_spun_up_state(TINY, DINOSAUR_VERSION) is None


# The shipped day-200 state's global-mean surface pressure is 1.9e-5 above the seed-0
# start's (100002.6 vs 100000.7 Pa); its 250 hPa zonal-mean jets peak at 31 and 38 m/s at
# 31 deg S and N (measured when it was made).
MASS_TOLERANCE = 5e-5
JET_SPEED = (20.0, 50.0)


@pytest.mark.slow
def test_the_shipped_state_is_a_spun_up_held_suarez_planet():
    """Cheap invariants of the 200-day state (the full bit-for-bit check is
    data/check_spun_up_state.py): the dry model keeps the mass of the seed-0 start, and
    the jets of Held-Suarez have formed (zero at rest)."""
    default = get_preset("default")
    shipped = spun_up.find_spun_up_state(default, DINOSAUR_VERSION)
    model = dynamics.build_model(default.truncation, default.sigma_layers, 60.0)
    state = dynamics.state_from_arrays(shipped.arrays, model)
    rest = dynamics.initial_state(model, default.seed, default.surface_pressure_perturbation_pa)
    grid = dynamics.equiangular_grid(model.coords.horizontal, 32, 64)
    frame_fn = make_frame_fn(model, grid, canonical.WEATHERBENCH_LEVELS)
    spun, start = frame_fn(state), frame_fn(rest)
    weights = np.cos(np.radians(np.linspace(-87.1875, 87.1875, 32)))[:, None]

    def global_mean(field):
        return float(np.sum(np.asarray(field) * weights) / (weights.sum() * 64))

    mass_change = global_mean(spun["surface_pressure"]) / global_mean(start["surface_pressure"])
    assert abs(mass_change - 1) < MASS_TOLERANCE
    level = list(canonical.WEATHERBENCH_LEVELS).index(250)
    u250 = np.asarray(spun["u_component_of_wind"])[level].mean(axis=-1)  # [lat]
    latitudes = np.linspace(-87.1875, 87.1875, 32)
    for hemisphere in (latitudes < 0, latitudes > 0):
        peak = int(np.argmax(np.where(hemisphere, u250, -np.inf)))
        assert JET_SPEED[0] < u250[peak] < JET_SPEED[1]
        assert 20 < abs(latitudes[peak]) < 50
    assert np.abs(np.asarray(start["u_component_of_wind"])).max() < 1.0
