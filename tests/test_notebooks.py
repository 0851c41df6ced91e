"""Every notebook runs top to bottom in quick mode (STMODEL_QUICK=1)."""

import os
import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="session")
def notebook_dir(tmp_path_factory, tiny_simulated) -> Path:
    # One folder for all notebooks: they share the generated data and the trained model.
    # The session's tiny simulation is theirs too: generate() reuses a file of its preset.
    folder = tmp_path_factory.mktemp("notebooks")
    (folder / "notebook_output").mkdir()
    shutil.copy(tiny_simulated, folder / "notebook_output" / "tiny.nc")
    return folder


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_quick_mode(path, notebook_dir, monkeypatch):
    notebook = nbformat.read(path, as_version=4)
    assert all(not cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), (
        f"{path.name}: outputs must be stripped before committing"
    )
    monkeypatch.setenv("STMODEL_QUICK", "1")
    monkeypatch.setenv(
        "PYTHONPATH", str(path.parent.parent) + os.pathsep + os.environ.get("PYTHONPATH", "")
    )
    NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(notebook_dir)}},
    ).execute()
