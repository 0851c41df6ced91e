"""The resumable work directory of a simulation: spin-up checkpoint and output chunks.

Layout of `<out>.work/`:

* `manifest.json`: the preset fingerprint the directory belongs to;
* `spinup.npz`: the latest spin-up state, with its stage and days done;
* `spinup_source.txt`: where the output run's first state came from (from rest,
  or which shipped spun-up state), for the file's provenance;
* `chunk-NNNNN.npz`: the frames of one output chunk plus the model state at
  its end, so the run resumes after the last finished chunk.

Every file is written to a temporary name and renamed into place, so an
interruption leaves either the old file or the new one, never half of one.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from stmodel.atomic_files import atomic_path

MANIFEST = "manifest.json"
SPINUP = "spinup.npz"
SPINUP_SOURCE = "spinup_source.txt"
STATE_PREFIX = "state_"


def atomic_save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """np.savez to `path`, whole or not at all."""
    with atomic_path(path) as temporary, open(temporary, "wb") as file:
        np.savez(file, **arrays)


class WorkDirectory:
    """Checkpoints of one simulation, valid for one preset fingerprint."""

    def __init__(self, path: Path, fingerprint: str):
        self.path = path
        self.fingerprint = fingerprint

    def open(self) -> bool:
        """Creates the directory, or keeps it if it belongs to this fingerprint.

        A directory left by another preset or version is emptied. Returns
        whether earlier work was kept.
        """
        manifest = self.path / MANIFEST
        if manifest.exists():
            try:
                matches = json.loads(manifest.read_text())["fingerprint"] == self.fingerprint
            except (json.JSONDecodeError, KeyError):
                matches = False
            if matches:
                return True
            shutil.rmtree(self.path)
        self.path.mkdir(parents=False, exist_ok=True)
        with atomic_path(manifest) as temporary:
            temporary.write_text(json.dumps({"fingerprint": self.fingerprint}))
        return False

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    # Spin-up.

    def save_spinup(self, stage: int, days_done: int, state: dict[str, np.ndarray]) -> None:
        arrays = {STATE_PREFIX + name: value for name, value in state.items()}
        arrays["stage"] = np.asarray(stage)
        arrays["days_done"] = np.asarray(days_done)
        atomic_save_npz(self.path / SPINUP, arrays)

    def load_spinup(self) -> tuple[int, int, dict[str, np.ndarray]] | None:
        """(stage, days done in it, state) of the latest spin-up checkpoint, if any."""
        path = self.path / SPINUP
        if not path.exists():
            return None
        with np.load(path) as saved:
            state = _state_from(saved)
            return int(saved["stage"]), int(saved["days_done"]), state

    def save_spinup_source(self, text: str) -> None:
        with atomic_path(self.path / SPINUP_SOURCE) as temporary:
            temporary.write_text(text)

    def spinup_source(self) -> str | None:
        """The note of `save_spinup_source`, None if this directory has none."""
        path = self.path / SPINUP_SOURCE
        return path.read_text() if path.exists() else None

    # Output chunks.

    def chunk_path(self, index: int) -> Path:
        return self.path / f"chunk-{index:05d}.npz"

    def finished_chunks(self) -> int:
        """Number of consecutive finished chunks from the first."""
        count = 0
        while self.chunk_path(count).exists():
            count += 1
        return count

    def save_chunk(
        self, index: int, frames: dict[str, np.ndarray], state: dict[str, np.ndarray]
    ) -> None:
        arrays = dict(frames)
        arrays.update({STATE_PREFIX + name: value for name, value in state.items()})
        atomic_save_npz(self.chunk_path(index), arrays)

    def load_chunk_frames(self, index: int, names: tuple[str, ...]) -> dict[str, np.ndarray]:
        with np.load(self.chunk_path(index)) as saved:
            return {name: saved[name] for name in names}

    def load_chunk_state(self, index: int) -> dict[str, np.ndarray]:
        with np.load(self.chunk_path(index)) as saved:
            return _state_from(saved)


def _state_from(saved) -> dict[str, np.ndarray]:
    return {
        key[len(STATE_PREFIX) :]: saved[key] for key in saved.files if key.startswith(STATE_PREFIX)
    }
