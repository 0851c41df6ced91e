"""An input is never an output, and killed writers' temporary files are cleaned up."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from stmodel.atomic_files import (
    atomic_folder,
    atomic_path,
    check_not_an_input,
    remove_stale_temporaries,
)
from stmodel.cli import main
from stmodel.errors import UserError


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture()
def data_file(tmp_path) -> Path:
    path = tmp_path / "data.nc"
    path.write_bytes(b"precious input bytes")
    return path


def _dead_pid() -> int:
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(child.stdout)


def test_the_same_file_by_any_name_is_refused(tmp_path, data_file):
    link = tmp_path / "link.nc"
    link.symlink_to(data_file)
    for output in (data_file, link, tmp_path / "sub" / ".." / "data.nc"):
        with pytest.raises(UserError, match="is the input"):
            check_not_an_input(output, [data_file])
    assert check_not_an_input(tmp_path / "other.nc", [data_file]) == tmp_path / "other.nc"


def test_outputs_inside_an_input_store_and_folders_holding_inputs(tmp_path):
    store = tmp_path / "era5.zarr"
    store.mkdir()
    with pytest.raises(UserError, match="lies inside the input"):
        check_not_an_input(store / "forecast.nc", [store])
    # A folder written into may hold inputs; one replaced whole may not.
    check_not_an_input(tmp_path, [store])
    with pytest.raises(UserError, match="holds the input"):
        check_not_an_input(tmp_path, [store], replaces_folder=True)


def test_leftovers_of_killed_writers_are_removed_at_the_next_write(tmp_path):
    target = tmp_path / "forecast.nc"
    dead, alive = _dead_pid(), os.getpid()
    stale_file = tmp_path / f".forecast.nc.{dead}.abc123.tmp.nc"
    stale_folder = tmp_path / f".forecast.nc.{dead}.xyz.tmp"
    live = tmp_path / f".forecast.nc.{alive}.def456.tmp.nc"
    other = tmp_path / f".other.nc.{dead}.abc.tmp.nc"
    stale_file.write_bytes(b"x" * 100)
    stale_folder.mkdir()
    (stale_folder / "arrays.npz").write_bytes(b"y")
    live.write_bytes(b"z")
    other.write_bytes(b"w")
    with atomic_path(target) as temporary:
        temporary.write_text("done")
    assert target.read_text() == "done"
    assert not stale_file.exists() and not stale_folder.exists()
    assert live.exists() and other.exists()  # a running writer's, and another target's
    assert remove_stale_temporaries(tmp_path / "other.nc") == [other]


def _has_model_json(path: Path) -> bool:
    return (path / "model.json").is_file()


def test_atomic_folder_keeps_the_old_folder_when_writing_fails(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "model.json").write_text("old")
    with (
        pytest.raises(RuntimeError),
        atomic_folder(target, _has_model_json, "a model") as temporary,
    ):
        (temporary / "model.json").write_text("new")
        raise RuntimeError("killed half-way")
    assert (target / "model.json").read_text() == "old"
    with atomic_folder(target, _has_model_json, "a model") as temporary:
        (temporary / "model.json").write_text("new")
    assert (target / "model.json").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_atomic_folder_never_replaces_a_folder_of_other_files(tmp_path):
    target = tmp_path / "results"
    target.mkdir()
    (target / "notes.txt").write_text("keep me")
    with pytest.raises(UserError, match="results: is a folder holding other files, not a model"):
        with atomic_folder(target, _has_model_json, "a model") as temporary:
            (temporary / "model.json").write_text("new")
    assert [p.name for p in target.iterdir()] == ["notes.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results"]  # no temporary left
    # Files put there while the command ran are not deleted either.
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="holding other files"):
        with atomic_folder(empty, _has_model_json, "a model") as temporary:
            (empty / "late.txt").write_text("keep me too")
    assert (empty / "late.txt").read_text() == "keep me too"


def test_models_export_never_empties_a_folder_it_did_not_write(tmp_path, capsys):
    from stmodel.models import write_pretrained

    workdir = tmp_path / "run"
    (workdir / "checkpoints").mkdir(parents=True)
    card = tmp_path / "card.md"
    card.write_text("# card")
    out = tmp_path / "results"
    out.mkdir()
    (out / "scores.csv").write_text("precious")
    argv = ["models", "export", str(workdir), "--out", str(out), "--card", str(card)]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and f"--out {out}: is a folder holding other files" in error
    assert "shipped-model folder" in error
    assert [p.name for p in out.iterdir()] == ["scores.csv"]
    # A shipped-model folder (what export writes) is replaced whole, as before.
    model = tmp_path / "model"
    for summary in ("first", "second"):
        write_pretrained(model, {"summary": summary}, {"w": np.ones(2)}, {}, "float32", "# card")
    assert json.loads((model / "model.json").read_text())["summary"] == "second"


@pytest.mark.parametrize(
    "command",
    [
        ["forecast", "--data", "{data}", "--init", "2000-01-01", "--out", "{data}"],
        ["forecast", "--data", "{data}", "--init", "2000-01-01", "--out", "{link}"],
        ["downscale", "coarsen", "{data}", "--factor", "2", "--out", "{data}"],
        ["data", "convert", "{data}", "--out", "{data}"],
        ["data", "stats", "{stats}", "--out", "{folder}"],
        ["evaluate", "--forecast", "{data}", "--truth", "{data}", "--out", "{data}"],
        ["train", "--config", "tiny", "--data", "{data}", "--workdir", "{data}"],
    ],
    ids=["forecast", "forecast-link", "coarsen", "convert", "stats", "evaluate", "train"],
)
def test_commands_refuse_to_overwrite_their_inputs(tmp_path, data_file, command, capsys):
    folder = tmp_path / "stats_dir"
    folder.mkdir()
    stats = folder / "stats.nc"
    stats.write_bytes(b"precious stats")
    link = tmp_path / "link.nc"
    link.symlink_to(data_file)
    names = dict(data=data_file, link=link, stats=stats, folder=folder)
    before = {path: _digest(path) for path in (data_file, stats)}
    argv = [part.format(**{k: str(v) for k, v in names.items()}) for part in command]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "destroy the input" in error, error
    assert {path: _digest(path) for path in (data_file, stats)} == before


def test_models_export_refuses_its_own_checkpoint_folder(tmp_path, capsys):
    workdir = tmp_path / "run"
    (workdir / "checkpoints").mkdir(parents=True)
    card = tmp_path / "card.md"
    card.write_text("# card")
    for out in (workdir, tmp_path):  # the checkpoint itself, and a folder holding it
        argv = ["models", "export", str(workdir), "--out", str(out), "--card", str(card)]
        assert main(argv) == 2
        assert "destroy the input" in capsys.readouterr().err
    assert (workdir / "checkpoints").is_dir()


@pytest.mark.parametrize(
    "command, expected",
    [
        (["data", "convert", "{data}", "--out", "{folder}"], "is a folder"),
        (["data", "convert", "{data}", "--out", "{file}/x.nc"], "is a file"),
        (["data", "stats", "{data}", "--out", "{file}"], "is a file"),
        (["evaluate", "--forecast", "{data}", "--truth", "{data}", "--out", "{file}"], "is a file"),
        (
            ["forecast", "--data", "{data}", "--init", "2001-01-01", "--out", "{folder}"],
            "is a folder",
        ),
        (["train", "--config", "tiny", "--data", "{data}", "--workdir", "{file}"], "is a file"),
    ],
    ids=["convert-folder", "convert-under-file", "stats", "evaluate", "forecast", "train"],
)
def test_outputs_where_a_folder_or_file_stands_are_refused_in_one_line(
    tmp_path, command, expected, capsys
):
    from data_styles import truth

    data = tmp_path / "truth.nc"
    truth().to_netcdf(data)
    folder, file = tmp_path / "a_folder", tmp_path / "a_file"
    folder.mkdir()
    file.write_text("not a folder")
    argv = [part.format(data=data, folder=folder, file=file) for part in command]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and expected in error, error
    assert file.read_text() == "not a folder" and list(folder.iterdir()) == []
