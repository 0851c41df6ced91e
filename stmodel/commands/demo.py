"""`stmodel demo`: the main job, end to end on built-in simulated data."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from stmodel.commands.arguments import add_quiet_flag, positive_int


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="generate data, forecast with the pretrained models, evaluate and draw "
        "maps, end to end",
        description="The main job on a fresh machine: generate the built-in simulated "
        "reanalysis (Held-Suarez, dinosaur), compute its climatology, forecast the test period "
        "with the shipped pretrained 24 h + 6 h models (with --train: train the cpu-small 6 h "
        "model and a 24 h model warm-started from it instead), score the forecasts against "
        "persistence and climatology, and draw maps. Rerunning picks up where an interrupted "
        "run stopped.",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("demo_output"), help="output folder (default: demo_output)"
    )
    parser.add_argument("--preset", default="default", help="data preset (default: default)")
    parser.add_argument(
        "--train",
        action="store_true",
        help="train the models from scratch instead of using the shipped ones",
    )
    parser.add_argument(
        "--checkpoint",
        nargs="+",
        default=None,
        metavar="DIR_OR_NAME",
        help="models to forecast with when not training (default: the shipped 24 h + 6 h pair)",
    )
    parser.add_argument(
        "--config", default="cpu-small", help="with --train: training preset (6 h model)"
    )
    parser.add_argument(
        "--config-24h",
        default="cpu-small-24h",
        help="training preset of the 24 h model, warm-started from the 6 h one",
    )
    parser.add_argument(
        "--steps", type=positive_int, help="6 h training steps (default: the preset's)"
    )
    parser.add_argument(
        "--steps-24h", type=positive_int, help="24 h training steps (default: the preset's)"
    )
    parser.add_argument("--lead-days", type=positive_int, default=10)
    parser.add_argument(
        "--members",
        type=positive_int,
        default=8,
        help="members of the shipped stochastic models' ensemble (default 8; 1: none)",
    )
    parser.add_argument("--seed", type=int, default=0, help="the ensemble's noise seed")
    add_quiet_flag(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    from stmodel.atomic_files import check_not_an_input
    from stmodel.demo import run_demo
    from stmodel.errors import UserError
    from stmodel.models import DEFAULT_MODELS

    if args.checkpoint and args.train:
        raise UserError("--checkpoint and --train exclude each other: --train makes the models")
    check_not_an_input(args.out, args.checkpoint or [])
    result = run_demo(
        args.out,
        preset=args.preset,
        train_models=args.train,
        pretrained=tuple(args.checkpoint or DEFAULT_MODELS),
        config_name=args.config,
        config_24h_name=args.config_24h,
        lead_days=args.lead_days,
        steps=args.steps,
        steps_24h=args.steps_24h,
        members=args.members,
        seed=args.seed,
        progress=not args.quiet,
    )
    print("\n== done")
    for key in ("scorecard", "forecast"):
        print(f"   {key:11s} {result[key]}")
    print(f"   models      {', '.join(result['checkpoints'])}")
    print(f"   skill plots {', '.join(result['skill_plots'])}")
    print(f"   maps        {Path(result['maps'][0]).parent}")
    if "ensemble_scorecard" in result:
        print(f"   ensemble    {result['ensemble_scorecard']}")
        print(f"               {Path(result['ensemble_plots'][0]).parent}")
    print(f"   timings     {json.dumps({k: round(v) for k, v in result['timings_s'].items()})}")
    return 0
