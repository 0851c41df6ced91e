"""The built-in simulated reanalysis (Held-Suarez with dinosaur), in canonical form.

* :func:`generate` (``reanalysis``): spin-up, output and the resumable run;
* ``presets``: the named presets (grid, time step, period) and their fingerprints;
* ``dynamics``: the dycore; ``levels``: sigma to pressure levels;
* ``netcdf``: the CF file; ``workdir``: checkpoints and chunks of an unfinished run.
"""

from __future__ import annotations

from typing import Any

from stmodel.simulation.presets import PRESETS, SimulationPreset, get_preset

__all__ = ["PRESETS", "SimulationPreset", "generate", "get_preset"]


def __getattr__(name: str) -> Any:
    # generate is imported on first use: it pulls in JAX and dinosaur, which
    # `stmodel --help` and the presets alone should not pay for.
    if name == "generate":
        from stmodel.simulation.reanalysis import generate

        return generate
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
