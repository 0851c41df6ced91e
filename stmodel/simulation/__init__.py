"""The built-in simulated reanalysis (Held-Suarez with dinosaur), in canonical form.

* :func:`generate` (``reanalysis``): spin-up, output and the resumable run;
  :func:`save_spun_up_state`: the end of a spin-up from rest, as shipped in ``spun_up/``;
* ``spun_up``: the shipped spun-up states and which runs may start from them;
* ``presets``: the named presets (grid, time step, period) and their fingerprints;
* ``dynamics``: the dycore; ``levels``: sigma to pressure levels;
* ``netcdf``: the CF file; ``workdir``: checkpoints and chunks of an unfinished run.
"""

from __future__ import annotations

from typing import Any

from stmodel.simulation.presets import PRESETS, SimulationPreset, get_preset

__all__ = ["PRESETS", "SimulationPreset", "generate", "get_preset", "save_spun_up_state"]


def __getattr__(name: str) -> Any:
    # generate and save_spun_up_state are imported on first use: they pull in JAX and
    # dinosaur, which `stmodel --help` and the presets alone should not pay for.
    if name in ("generate", "save_spun_up_state"):
        from stmodel.simulation import reanalysis

        return getattr(reanalysis, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
