"""Checks that a shipped spun-up state is, bit for bit, what the spin-up from rest gives.

    python data/check_spun_up_state.py [--preset default] [--against FRESH.npz]

Spins the preset up from rest (`stmodel data generate --save-spun-up`; 200
simulated days for `default`) into a temporary directory, or
reads FRESH.npz made that way, and compares every field with the state that
`generate` would start the preset from. Prints JSON (per field: whether equal,
the number of differing coefficients, the largest absolute difference) and
exits 1 if any field differs or no shipped state matches the preset. The test
suite checks the mechanism on the `tiny` preset and the shipped state's
settings; this is the full check, too slow for the suite.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from stmodel.simulation import save_spun_up_state
from stmodel.simulation.presets import get_preset
from stmodel.simulation.spun_up import find_spun_up_state, read_spun_up_state


def compare(shipped: dict[str, np.ndarray], fresh: dict[str, np.ndarray]) -> dict:
    """{field: {"equal", "differing", "max_abs_difference"}}, bit for bit."""
    figures = {}
    for name, values in shipped.items():
        other = fresh[name]
        differing = int(np.count_nonzero(values.view(np.uint32) != other.view(np.uint32)))
        figures[name] = {
            "equal": differing == 0 and values.shape == other.shape,
            "differing": differing,
            "max_abs_difference": float(np.max(np.abs(values - other))),
        }
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="default", help="preset name (default: default)")
    parser.add_argument(
        "--against",
        type=Path,
        metavar="NPZ",
        help="a state already saved by `stmodel data generate --save-spun-up` (else spin up now)",
    )
    args = parser.parse_args(argv)
    preset = get_preset(args.preset)
    shipped = find_spun_up_state(preset, importlib.metadata.version("dinosaur"))
    if shipped is None:
        print(f"no shipped spun-up state matches preset {preset.name!r}", file=sys.stderr)
        return 1
    if args.against is not None:
        fresh = read_spun_up_state(args.against)
    else:
        with tempfile.TemporaryDirectory() as directory:
            path = save_spun_up_state(preset, Path(directory) / "fresh.npz")
            fresh = read_spun_up_state(path)
    figures = {
        "shipped": str(shipped.path),
        "fresh_provenance": fresh.provenance,
        "same_settings": fresh.settings == shipped.settings,
        "fields": compare(shipped.arrays, fresh.arrays),
    }
    print(json.dumps(figures, indent=2))
    identical = figures["same_settings"] and all(f["equal"] for f in figures["fields"].values())
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
