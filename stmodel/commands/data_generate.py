"""`stmodel data generate`: write the built-in simulated reanalysis (Held-Suarez)."""

from __future__ import annotations

import argparse
import shlex
import sys
import textwrap
import time
from pathlib import Path

from stmodel.commands.arguments import add_quiet_flag
from stmodel.simulation.presets import PRESETS


def register(data_subparsers: argparse._SubParsersAction) -> None:
    """Adds `generate` to the `stmodel data` subcommands."""
    preset_lines = "\n".join(
        f"  {name:8s} {preset.description}" for name, preset in PRESETS.items()
    )
    parser = data_subparsers.add_parser(
        "generate",
        help="simulate a reanalysis-like dataset (Held-Suarez with dinosaur)",
        description=textwrap.fill(
            "Simulate the dry primitive equations with Held-Suarez forcing (dinosaur), spun up "
            "from rest, and write 6-hourly geopotential, temperature and winds on the 13 "
            "WeatherBench pressure levels plus surface fields as canonical NetCDF. A run whose "
            "spin-up settings (stages, levels, grid, seed, perturbation, code versions) equal "
            "those of a state shipped in stmodel/simulation/spun_up/ starts from it instead, "
            "with the same numbers (the default preset with seed 0). Interrupted runs resume "
            "from PATH.work/; an existing PATH made with the same preset is reused."
        )
        + "\n\npresets:\n"
        + preset_lines,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--preset", required=True, metavar="NAME", help=f"one of: {', '.join(PRESETS)}"
    )
    parser.add_argument(
        "--out",
        type=Path,
        metavar="PATH",
        help="NetCDF file to write (its directory must exist); required unless --save-spun-up",
    )
    parser.add_argument(
        "--save-spun-up",
        type=Path,
        metavar="NPZ",
        help="instead of writing data: spin the preset up from rest (never from a shipped "
        "state) and save the state that starts its output run to NPZ, e.g. to regenerate "
        "stmodel/simulation/spun_up/default_seed0.npz",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        metavar="N",
        help="seed of the initial perturbation instead of the preset's: the same "
        "planet and climate on another trajectory (for held-out data)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace PATH if it exists and was made with another preset (or NPZ if it exists)",
    )
    add_quiet_flag(parser, "--no-progress")  # --no-progress: its older name
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Imported here so `stmodel --help` does not pay for importing JAX and dinosaur.
    import dataclasses

    from stmodel.errors import UserError
    from stmodel.simulation import generate, save_spun_up_state
    from stmodel.simulation.presets import get_preset

    if (args.out is None) == (args.save_spun_up is None):
        raise UserError(
            "stmodel data generate: expected exactly one of --out PATH (write the data) and "
            "--save-spun-up NPZ (save the spun-up state)"
        )
    started = time.monotonic()
    command = "stmodel " + shlex.join(sys.argv[1:])
    preset = get_preset(args.preset)
    if args.seed is not None:
        preset = dataclasses.replace(preset, seed=args.seed)
    if args.save_spun_up is not None:
        path = save_spun_up_state(
            preset,
            args.save_spun_up,
            progress=not args.quiet,
            overwrite=args.overwrite,
            command=command,
        )
        size_kb = path.stat().st_size / 1e3
        print(
            f"{path} ({size_kb:.0f} kB), spun-up state of preset {args.preset} "
            f"(seed {preset.seed}), {time.monotonic() - started:.0f} s"
        )
        return 0
    path = generate(
        preset, args.out, progress=not args.quiet, overwrite=args.overwrite, command=command
    )
    size_mb = path.stat().st_size / 1e6
    print(f"{path} ({size_mb:.0f} MB), preset {args.preset}, {time.monotonic() - started:.0f} s")
    return 0
