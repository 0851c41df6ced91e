"""`stmodel downscale`: coarsen, train, apply and evaluate regional downscaling models."""

from __future__ import annotations

import argparse
import json
import shlex
import time
from pathlib import Path

from stmodel.atomic_files import check_not_an_input, check_output_file
from stmodel.commands.arguments import add_quiet_flag, non_negative_int, positive_int


def _region(text: str):
    from stmodel.downscaling.region import RegionBox

    return RegionBox.parse(text)


def _patch(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"{text!r}: expected three sizes P,LAT,LON, e.g. 2,4,4")
    return values


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "downscale",
        help="fine-tune the pretrained model to downscale over a region",
        description="Regional downscaling: fine-tune the pretrained global transformer to map "
        "coarse fields (global or regional analyses or forecasts) to fine fields over a "
        "latitude-longitude box, apply it, and score it against interpolation baselines.",
    )
    commands = parser.add_subparsers(title="downscale commands", metavar="COMMAND", required=True)

    coarsen = commands.add_parser(
        "coarsen",
        help="block-mean coarsening (to make the coarse input of a worked case)",
        description="Average FACTOR x FACTOR cells of every gridded variable. Rows and columns "
        "that do not fill a whole block are dropped at the northern and eastern ends; "
        "--region cuts the data first.",
    )
    coarsen.add_argument("data", nargs="+", metavar="PATH", help="fine data files")
    coarsen.add_argument("--factor", type=int, required=True, help="cells per block side")
    coarsen.add_argument(
        "--region",
        type=_region,
        metavar="LAT0,LAT1,LON0,LON1",
        help="cut to this box first (e.g. 50.25,58,-10,1.75)",
    )
    coarsen.add_argument("--out", required=True, type=Path, help="output NetCDF file")
    add_quiet_flag(coarsen)
    coarsen.set_defaults(func=run_coarsen)

    train = commands.add_parser(
        "train",
        help="fine-tune a pretrained checkpoint for a region",
        description="Learn to map coarse fields, plus static fine-grid fields (orography and "
        "land-sea mask where the fine data or --static give them, latitude/longitude "
        "encodings) and the time of day and year, to fine fields over the region. The "
        "pretrained transformer blocks are reused between a new fine-grid embedding and head. "
        "Running the same command again resumes from the newest checkpoint in --workdir.",
        epilog="Modes: full (train everything), frozen (pretrained backbone fixed; embedding, "
        "head and position bias trained), lora (backbone fixed plus low-rank adapters). "
        "--init random trains the same network from scratch, the control for pre-training.",
    )
    train.add_argument(
        "--pretrained",
        default="stmodel-small-6h",
        metavar="DIR_OR_NAME",
        help="the global model: a shipped model's name (`stmodel models`) or a "
        "training workdir (default: stmodel-small-6h)",
    )
    train.add_argument(
        "--coarse",
        nargs="+",
        required=True,
        metavar="PATH",
        help="coarse input data (global or regional)",
    )
    train.add_argument(
        "--fine", nargs="+", required=True, metavar="PATH", help="fine truth covering the region"
    )
    train.add_argument(
        "--region",
        required=True,
        type=_region,
        metavar="LAT0,LAT1,LON0,LON1",
        help="box, south to north and west to east, e.g. 20,70,0,88 or "
        "50,58,-10,2 (may cross 0 deg)",
    )
    train.add_argument("--workdir", required=True, type=Path)
    train.add_argument(
        "--static",
        nargs="+",
        default=[],
        metavar="PATH",
        help="static fine-grid fields (geopotential_at_surface, land_sea_mask) "
        "if the fine data lack them",
    )
    train.add_argument(
        "--config",
        metavar="FILE",
        help="a TOML file of settings (the fields of DownscaleConfig); the options below "
        "and KEY=VALUE overrides apply on top",
    )
    # Options that set a config field: each value goes through the config loader as a
    # (field, value) override, so every setting is checked in one place.
    _config_option(train, "--mode", "mode", choices=("full", "frozen", "lora"))
    _config_option(train, "--init", "init", choices=("pretrained", "random"))
    _config_option(train, "--steps", "steps", type=positive_int)
    _config_option(train, "--batch-size", "batch_size", type=positive_int)
    _config_option(
        train,
        "--learning-rate",
        "optimizer.learning_rate",
        type=float,
        help="peak of the warm-up + cosine schedule",
    )
    _config_option(train, "--warmup-steps", "optimizer.warmup_steps", type=non_negative_int)
    _config_option(train, "--lora-rank", "lora_rank", type=positive_int)
    _config_option(
        train,
        "--patch",
        "patch",
        type=_patch,
        metavar="P,LAT,LON",
        help="patch of the fine grid per token (default: the pretrained model's)",
    )
    _config_option(
        train,
        "--halo-tokens",
        "halo_tokens",
        type=non_negative_int,
        metavar="N",
        help="tokens of interpolated coarse context the network sees beyond each "
        "edge of the region (0 for none)",
    )
    _config_option(
        train,
        "--interpolation",
        "interpolation",
        choices=("nearest", "bilinear", "bicubic"),
        help="how the coarse input is brought to the fine grid",
    )
    _config_option(
        train,
        "--train-period",
        "train_period",
        metavar="START/END",
        help="default: the fine data's train_period attribute, else all times",
    )
    _config_option(train, "--validation-period", "validation_period", metavar="START/END")
    _config_option(train, "--checkpoint-every", "checkpoint_every", type=positive_int)
    _config_option(train, "--seed", "seed", type=int)
    train.add_argument(
        "--mesh",
        help="DATAxFSDP device mesh, e.g. 4x2 (default 1x1: one device); the batch size "
        "must be a multiple of its devices",
    )
    add_quiet_flag(train)
    train.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    train.set_defaults(func=run_train)

    apply = commands.add_parser(
        "apply",
        help="downscale a coarse analysis or forecast with a fine-tuned checkpoint",
        description="Write fine fields over the checkpoint's region: a canonical NetCDF (time, "
        "level, lat, lon) for an analysis, or a WeatherBench 2 layout forecast (time, "
        "prediction_timedelta, level, latitude, longitude) for a forecast such as `stmodel "
        "forecast` writes.",
    )
    apply.add_argument("--checkpoint", required=True, type=Path, metavar="DIR")
    apply.add_argument("--coarse", nargs="+", required=True, metavar="PATH")
    apply.add_argument("--out", required=True, type=Path, help="output NetCDF file")
    apply.add_argument("--batch", type=positive_int, default=16, help="times per batch")
    add_quiet_flag(apply)
    apply.set_defaults(func=run_apply)

    evaluate = commands.add_parser(
        "evaluate",
        help="RMSE and bias against the fine truth, beside interpolation baselines",
        description="Score fine-tuned checkpoints over a test period: area-weighted RMSE and bias "
        "per variable and level (and RMSE with every cell weighted alike), beside nearest, "
        "bilinear and bicubic interpolation and bilinear plus the training-period mean "
        "residual.",
    )
    evaluate.add_argument("--checkpoint", nargs="+", required=True, type=Path, metavar="DIR")
    evaluate.add_argument(
        "--name",
        nargs="+",
        metavar="NAME",
        help="a column name per checkpoint (default: the folder names)",
    )
    evaluate.add_argument("--coarse", nargs="+", required=True, metavar="PATH")
    evaluate.add_argument("--fine", nargs="+", required=True, metavar="PATH")
    evaluate.add_argument(
        "--period", metavar="START/END", help="default: the fine data's test_period attribute"
    )
    evaluate.add_argument("--out", type=Path, help="write the scores as JSON")
    evaluate.add_argument(
        "--corner-aligned-baselines",
        action="store_true",
        help="also score the baselines as scipy.ndimage.zoom computes them "
        "(coarse end values on the end fine cells), the protocol of figures "
        "published that way; needs a coarse file made by `downscale coarsen "
        "--region` of the same box",
    )
    evaluate.add_argument("--batch", type=positive_int, default=16)
    add_quiet_flag(evaluate)
    evaluate.set_defaults(func=run_evaluate)


CONFIG_OPTION = "config_field:"  # argparse dest prefix of the options that set a config field


def _config_option(parser: argparse.ArgumentParser, flag: str, field: str, **kwargs) -> None:
    from stmodel.downscaling.config import DownscaleConfig

    default = DownscaleConfig()
    for part in field.split("."):
        default = getattr(default, part)
    shown = "" if default in ("", ()) else f"default {default}"
    kwargs["help"] = "; ".join(part for part in (kwargs.get("help", ""), shown) if part) or None
    if "choices" not in kwargs:
        kwargs.setdefault("metavar", flag.lstrip("-").upper().replace("-", "_"))
    parser.add_argument(flag, dest=CONFIG_OPTION + field, default=None, **kwargs)


def _command_line(args) -> str:
    """This invocation as a user would type it (recorded beside the results)."""
    return "stmodel " + shlex.join(args.argv)


def run_coarsen(args) -> int:
    from stmodel.downscaling.coarsen import coarsen_file

    check_not_an_input(args.out, args.data)
    path = coarsen_file(args.data, args.out, args.factor, args.region)
    print(f"wrote {path}")
    return 0


def run_train(args) -> int:
    from stmodel.downscaling.config import DownscaleConfig
    from stmodel.downscaling.training import train_downscaler
    from stmodel.training import sharding
    from stmodel.training.config import load_config

    options = [
        (dest[len(CONFIG_OPTION) :], value)
        for dest, value in vars(args).items()
        if dest.startswith(CONFIG_OPTION) and value is not None
    ]
    config = load_config(args.config, [*options, *args.overrides], DownscaleConfig)
    check_not_an_input(args.workdir, [*args.coarse, *args.fine], "--workdir")
    summary = train_downscaler(
        config,
        args.pretrained,
        args.coarse,
        args.fine,
        args.region,
        args.workdir,
        static_paths=args.static,
        progress=not args.quiet,
        command=_command_line(args),
        mesh_shape=sharding.parse_mesh(args.mesh) if args.mesh else None,
    )
    shown = {k: v for k, v in summary.items() if k != "transfer"}
    print(json.dumps({"workdir": str(args.workdir), **shown}, indent=2))
    return 0


def run_apply(args) -> int:
    from stmodel.downscaling.apply import downscale_file

    check_output_file(args.out, [*args.coarse, args.checkpoint])
    started = time.perf_counter()
    path = downscale_file(
        args.checkpoint, args.coarse, args.out, batch_size=args.batch, progress=not args.quiet
    )
    print(f"wrote {path} in {time.perf_counter() - started:.1f} s")
    return 0


def run_evaluate(args) -> int:
    from stmodel.data.pipeline import SplitPeriod
    from stmodel.downscaling.checkpoint import DownscalingCheckpoint
    from stmodel.downscaling.evaluate import (
        evaluate_downscaling,
        format_table,
        training_summary,
        write_scores,
    )
    from stmodel.errors import UserError

    if args.out:
        check_output_file(args.out, [*args.coarse, *args.fine, *args.checkpoint])
    names = args.name or [path.name for path in args.checkpoint]
    if len(names) != len(args.checkpoint) or len(set(names)) != len(names):
        raise UserError("--name needs one distinct name per --checkpoint")
    checkpoints = {
        name: DownscalingCheckpoint.load(path) for name, path in zip(names, args.checkpoint)
    }
    period = SplitPeriod.parse(args.period) if args.period else None
    summaries = {name: training_summary(path) for name, path in zip(names, args.checkpoint)}
    scores = evaluate_downscaling(
        checkpoints,
        args.coarse,
        args.fine,
        period,
        batch_size=args.batch,
        progress=not args.quiet,
        summaries=summaries,
        corner_aligned=args.corner_aligned_baselines,
        command=_command_line(args),
    )
    print(
        f"test RMSE over {scores['region']}, {scores['period']} ({scores['n_times']} times), "
        "area-weighted"
    )
    print(format_table(scores))
    if args.corner_aligned_baselines:
        print("unweighted (every fine cell alike)")
        print(format_table(scores, score="rmse_unweighted"))
    if args.out:
        print(f"wrote {write_scores(scores, args.out)}")
    return 0
