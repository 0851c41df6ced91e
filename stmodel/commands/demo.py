"""`stmodel demo`: the main job, end to end on built-in simulated data."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo", help="generate data, train, forecast, evaluate and draw maps, end to end",
        description="The main job on a fresh machine: generate the built-in simulated "
        "reanalysis (Held-Suarez, dinosaur), compute statistics, train the cpu-small model, "
        "forecast the test period, score it against persistence and climatology, and draw "
        "maps. Rerunning picks up where an interrupted run stopped.")
    parser.add_argument("--out", type=Path, default=Path("demo_output"),
                        help="output folder (default: demo_output)")
    parser.add_argument("--preset", default="default", help="data preset (default: default)")
    parser.add_argument("--config", default="cpu-small", help="training preset")
    parser.add_argument("--steps", type=int, help="training steps (default: the preset's)")
    parser.add_argument("--lead-days", type=int, default=10)
    parser.add_argument("--quiet", action="store_true")
    parser.set_defaults(func=run)


def run(args) -> int:
    from stmodel.demo import run_demo

    result = run_demo(args.out, preset=args.preset, config_name=args.config,
                      lead_days=args.lead_days, steps=args.steps, progress=not args.quiet)
    print("\n== done")
    for key in ("scorecard", "forecast", "checkpoint"):
        print(f"   {key:11s} {result[key]}")
    print(f"   skill plots {', '.join(result['skill_plots'])}")
    print(f"   maps        {Path(result['maps'][0]).parent}")
    print(f"   timings     {json.dumps({k: round(v) for k, v in result['timings_s'].items()})}")
    return 0
