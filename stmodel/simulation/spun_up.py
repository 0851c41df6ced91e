"""Spun-up states shipped with the package, so that a run can skip its spin-up from rest.

The spin-up is half of the `default` preset's cost (200 of 685 simulated days)
and its end state depends only on the settings in `spinup_settings`: the
spin-up stages (truncation, time step, days), the sigma levels, the seed and
amplitude of the initial perturbation, the output grid (compiled into the
day function the spin-up reuses), and the code (dinosaur's version,
`SIMULATION_FORMAT_VERSION`, the dycore's filter and reference constants). A
shipped state records those settings, and only a run whose settings equal them
exactly starts from it; every other run (another seed, spin-up length, time
step...) spins up from rest as before. The preset's name, output periods and
chunking play no part: they do not change the spin-up.

The output run is the same jitted day function fed the same float32 spectral
coefficients either way, so a run from a shipped state writes the same numbers,
bit for bit, as one from rest (tests/test_simulate.py checks this on the
`tiny` preset; `data/check_spun_up_state.py` checks the shipped states against
a fresh spin-up).

File: one `.npz` (compressed) per state in `spun_up/`, holding the modal
fields of `dynamics.STATE_FIELDS` as float32 and a `metadata` JSON string:
`{"format": 1, "settings": spinup_settings(...), "provenance": {...}}`.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from stmodel.atomic_files import atomic_path
from stmodel.errors import UserError
from stmodel.simulation import dynamics
from stmodel.simulation.presets import SIMULATION_FORMAT_VERSION, SimulationPreset

# The shipped states. Module-level (read at call time), so tests can point it elsewhere.
SPUN_UP_DIRECTORY = Path(__file__).parent / "spun_up"

FILE_FORMAT = 1
METADATA_KEY = "metadata"
# dinosaur's State holds float32 (JAX without x64); any other dtype would be
# cast on the way in and no longer be the spin-up's exact end state.
STATE_DTYPE = np.float32


@dataclasses.dataclass(frozen=True)
class SpunUpState:
    """A saved end of a spin-up.

    Attributes:
      path: the `.npz` file.
      settings: what the spin-up depended on (`spinup_settings`).
      provenance: how it was made: preset name, versions, command, date.
      arrays: {field: modal coefficients}, float32, as `dynamics.state_to_arrays`.
      sha256: of the file's bytes, short, to name it in provenance.
    """

    path: Path
    settings: dict[str, Any]
    provenance: dict[str, Any]
    arrays: dict[str, np.ndarray]
    sha256: str

    def describe(self) -> str:
        """One line for the generated file's attributes."""
        made = self.provenance
        return (
            f"started from the shipped spun-up state {_display_path(self.path)} "
            f"(sha256 {self.sha256}): the end of the spin-up from rest of preset "
            f"{made.get('preset')!r}, seed {self.settings['seed']}, saved by "
            f"`{made.get('command')}` with dinosaur {self.settings['dinosaur_version']} and "
            f"jax {made.get('jax_version')}; the spin-up was not integrated again"
        )


def spinup_settings(preset: SimulationPreset, dinosaur_version: str) -> dict[str, Any]:
    """Everything the state at the end of `preset`'s spin-up depends on, as JSON values."""
    settings = {
        "stages": [
            [stage.truncation, stage.time_step_minutes, stage.days]
            for stage in preset.spinup_stages()
        ],
        "sigma_layers": preset.sigma_layers,
        # The output grid is compiled into the day function that the spin-up at the
        # output resolution reuses (frames dropped); kept, so that no XLA fusion
        # choice that depends on it can differ between the saved and the new run.
        "output_grid": [preset.output_latitudes, preset.output_longitudes],
        "seed": preset.seed,
        "surface_pressure_perturbation_pa": preset.surface_pressure_perturbation_pa,
        "simulation_format_version": SIMULATION_FORMAT_VERSION,
        "dinosaur_version": dinosaur_version,
        # Code constants of the dycore: a change to them changes the trajectory even
        # where nobody bumped SIMULATION_FORMAT_VERSION.
        "dynamics": {
            "filter_tau": dynamics.FILTER_TAU,
            "filter_order": dynamics.FILTER_ORDER,
            "filter_cutoff": dynamics.FILTER_CUTOFF,
            "reference_surface_pressure_pa": dynamics.REFERENCE_SURFACE_PRESSURE_PA,
            "spherical_harmonics": dynamics.SPHERICAL_HARMONICS_IMPL.__name__,
        },
    }
    # Through JSON, so that it compares equal to what a file read back holds (tuples
    # become lists, ints stay ints).
    return json.loads(json.dumps(settings))


def find_spun_up_state(preset: SimulationPreset, dinosaur_version: str) -> SpunUpState | None:
    """The shipped state whose settings equal this preset's spin-up, if one is shipped.

    Raises:
      UserError: a shipped file cannot be read (a broken installation).
    """
    wanted = spinup_settings(preset, dinosaur_version)
    for path in sorted(Path(SPUN_UP_DIRECTORY).glob("*.npz")):
        if path.name.startswith("."):
            continue  # a temporary file of a writer still at work (stmodel.atomic_files)
        state = read_spun_up_state(path)
        if state.settings == wanted:
            return state
    return None


def read_spun_up_state(path: str | Path) -> SpunUpState:
    """Reads and checks a spun-up state file.

    Raises:
      UserError: not a readable `.npz`, no or unreadable metadata, a field missing,
        or a field not float32.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
        with np.load(path, allow_pickle=False) as saved:
            contents = {name: saved[name] for name in saved.files}
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise UserError(
            f"cannot read the spun-up state {path}: {error}; expected an .npz written by "
            "`stmodel data generate --save-spun-up`"
        ) from None
    try:
        metadata = json.loads(str(contents.pop(METADATA_KEY)))
        if metadata["format"] != FILE_FORMAT:
            raise ValueError(f"format {metadata['format']}, expected {FILE_FORMAT}")
        settings, provenance = metadata["settings"], metadata["provenance"]
    except (KeyError, TypeError, ValueError) as error:
        raise UserError(
            f"the spun-up state {path} has no readable {METADATA_KEY!r} entry ({error}); "
            f"expected the JSON written by `stmodel data generate --save-spun-up`"
        ) from None
    missing = [name for name in dynamics.STATE_FIELDS if name not in contents]
    if missing:
        raise UserError(
            f"the spun-up state {path} lacks {', '.join(missing)}; expected the fields "
            f"{', '.join(dynamics.STATE_FIELDS)}"
        )
    for name in dynamics.STATE_FIELDS:
        if contents[name].dtype != STATE_DTYPE:
            raise UserError(
                f"the spun-up state {path} holds {name} as {contents[name].dtype}; expected "
                f"{np.dtype(STATE_DTYPE)}, the dtype of dinosaur's state"
            )
    arrays = {name: contents[name] for name in dynamics.STATE_FIELDS}
    digest = hashlib.sha256(raw).hexdigest()[:16]
    return SpunUpState(path, settings, provenance, arrays, digest)


def write_spun_up_state(
    path: str | Path,
    preset: SimulationPreset,
    dinosaur_version: str,
    arrays: dict[str, np.ndarray],
    *,
    command: str,
    seconds: float,
) -> None:
    """Saves the state at the end of `preset`'s spin-up to `path` (whole or not at all).

    Args:
      arrays: `dynamics.state_to_arrays` of the state that starts the output run.
      command: what made it, for provenance.
      seconds: wall time of the spin-up, for provenance.
    """
    import jax  # only here: reading and matching states needs no JAX
    import jaxlib

    for name in dynamics.STATE_FIELDS:
        if arrays[name].dtype != STATE_DTYPE:
            raise ValueError(f"{name} is {arrays[name].dtype}, expected {np.dtype(STATE_DTYPE)}")
    metadata = {
        "format": FILE_FORMAT,
        "settings": spinup_settings(preset, dinosaur_version),
        "provenance": {
            "preset": preset.name,
            "command": command,
            "created": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "jax_version": jax.__version__,
            "jaxlib_version": jaxlib.__version__,
            "spinup_wall_seconds": round(seconds, 1),
        },
    }
    contents = {name: np.asarray(arrays[name]) for name in dynamics.STATE_FIELDS}
    contents[METADATA_KEY] = np.asarray(json.dumps(metadata, sort_keys=True))
    with atomic_path(path) as temporary, open(temporary, "wb") as file:
        np.savez_compressed(file, **contents)


def _display_path(path: Path) -> str:
    """The path inside the package for a shipped file (machine-independent), else as is."""
    package_root = Path(__file__).resolve().parents[2]
    try:
        return str(path.resolve().relative_to(package_root))
    except ValueError:
        return str(path)
