"""`stmodel bench ...`: the arguments of the benchmarks in stmodel.benchmarks, each of which
prints one JSON line to stdout (status messages go to stderr)."""

from __future__ import annotations

import argparse
import json
import logging
from typing import TYPE_CHECKING

from stmodel.atomic_files import atomic_path
from stmodel.commands.arguments import add_quiet_flag, non_negative_int, positive_int
from stmodel.errors import UserError

if TYPE_CHECKING:  # imported when used: `stmodel --help` should not pay for importing JAX
    from stmodel.model.config import ModelConfig

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="time the model and the forecast pipeline on this machine",
        description="Benchmarks. Each prints one JSON line to stdout; status messages go to "
        "stderr (none with --quiet).",
    )
    bench_subparsers = parser.add_subparsers(
        title="bench commands", metavar="COMMAND", required=True
    )
    _register_model(bench_subparsers)
    _register_memory(bench_subparsers)
    _register_forecast(bench_subparsers)
    _register_ensemble(bench_subparsers)
    _register_pipeline(bench_subparsers)
    _register_forecast_memory(bench_subparsers)


def _register_forecast_memory(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "forecast-memory",
        help="peak memory of `stmodel forecast` for few and many initial times",
        description="Run `stmodel forecast` in a fresh process for each number of initial "
        "times (same lead and --batch), writing NetCDF and Zarr, and report each run's peak "
        "resident memory and wall time, and the ratio many/few: flat memory means a ratio "
        "near 1 while the output grows. Without --data the tiny simulation is made (~20 s) "
        "and repeated in time until there are enough initial times.",
    )
    parser.add_argument("--data", metavar="PATH", help="canonical NetCDF (default: tiny)")
    parser.add_argument(
        "--inits",
        nargs="+",
        type=positive_int,
        default=[4, 40],
        metavar="N",
        help="numbers of 6-hourly initial times (default: 4 40)",
    )
    parser.add_argument("--lead", default="10d", help="longest lead (default 10d)")
    parser.add_argument("--batch", type=positive_int, default=4, help="initial times per batch")
    parser.add_argument("--formats", nargs="+", choices=(".nc", ".zarr"), default=[".nc", ".zarr"])
    parser.add_argument("--checkpoint", nargs="+", default=[], metavar="DIR_OR_NAME")
    parser.add_argument("--workdir", metavar="DIR", help="for data and outputs (default: temp)")
    parser.add_argument("--out", metavar="FILE", help="also write the JSON to FILE")
    add_quiet_flag(parser)
    parser.set_defaults(func=run_forecast_memory_benchmark)


def run_forecast_memory_benchmark(args: argparse.Namespace) -> int:
    from stmodel.benchmarks.forecast_memory import benchmark_forecast_memory

    if len(set(args.inits)) < 2:
        raise UserError("bench forecast-memory: --inits needs two different numbers")
    result = benchmark_forecast_memory(
        args.data,
        inits=args.inits,
        lead=args.lead,
        batch=args.batch,
        formats=args.formats,
        workdir=args.workdir,
        checkpoints=args.checkpoint,
    )
    _emit(result, args.out)
    return 0


def _register_pipeline(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "pipeline",
        help="samples per second of the training-sample pipeline",
        description="Time the sample pipeline on a dataset's training period: loading into "
        "memory, then batches per second in memory and read lazily from disk. With "
        "--synthetic-1deg: write a synthetic 1 deg Zarr store (181 x 360, 13 levels, 70 "
        "channels, float32, 6-hourly, one time step per chunk) and report samples/s and MB/s "
        "of training batches read from it through the training loop's reader with each "
        "--prefetch depth, against what the pangu preset needs on an H100 (its analytic FLOPs "
        "at --mfu of the bf16 dense peak).",
    )
    parser.add_argument("paths", nargs="*", metavar="PATH")
    parser.add_argument("--batch", type=positive_int, default=2)
    parser.add_argument("--batches", type=positive_int, default=200)
    parser.add_argument(
        "--synthetic-1deg",
        nargs="?",
        const="",
        default=None,
        metavar="DIR",
        help="benchmark read-ahead on a synthetic 1 deg Zarr store written to DIR "
        "(default: a temporary folder, removed after)",
    )
    parser.add_argument("--days", type=positive_int, default=14, help="of the synthetic store")
    parser.add_argument(
        "--prefetch",
        nargs="+",
        type=non_negative_int,
        default=[0, 2, 4],
        metavar="N",
        help="read-ahead depths to time on the synthetic store (default: 0 2 4)",
    )
    parser.add_argument("--mfu", type=float, default=0.4, help="assumed MFU of the H100")
    parser.add_argument("--out", metavar="FILE", help="also write the JSON to FILE")
    add_quiet_flag(parser)
    parser.set_defaults(func=run_pipeline_benchmark)


def run_pipeline_benchmark(args: argparse.Namespace) -> int:
    from stmodel.benchmarks.pipeline import benchmark_pipeline

    if args.synthetic_1deg is not None:
        return _run_synthetic_pipeline_benchmark(args)
    if not args.paths:
        raise UserError("bench pipeline: give the data's PATHs, or --synthetic-1deg")
    _emit(benchmark_pipeline(args.paths, args.batch, args.batches), args.out)
    return 0


def _run_synthetic_pipeline_benchmark(args: argparse.Namespace) -> int:
    import shutil
    import tempfile
    import time
    from pathlib import Path

    from stmodel.benchmarks.pipeline import benchmark_prefetch, make_synthetic_store

    if not 0 < args.mfu <= 1:
        raise UserError(f"bench pipeline: --mfu {args.mfu}: expected a fraction in (0, 1]")
    folder = Path(args.synthetic_1deg or tempfile.mkdtemp(prefix="stmodel-pipeline-"))
    try:
        start = time.perf_counter()
        store = make_synthetic_store(folder / "synthetic-1deg.zarr", days=args.days)
        logger.info("wrote %s in %.0f s", store, time.perf_counter() - start)
        batches = min(args.batches, args.days * 4 - 2)
        result = benchmark_prefetch(
            store, batch_size=args.batch, n_batches=batches, depths=args.prefetch, mfu=args.mfu
        )
    finally:
        if not args.synthetic_1deg:
            shutil.rmtree(folder, ignore_errors=True)
    _emit(result, args.out)
    return 0


def _register_forecast(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "forecast",
        help="a 10-day forecast of the learned model against the dycore",
        description="Wall time of a 10-day forecast at 5.625 deg by the cpu-small network "
        "(6 h steps, and 24 h + 6 h steps) and of the dinosaur dynamical core simulating the "
        "same 10 days at T21 on this machine, and their ratio. Compile time excluded.",
    )
    parser.add_argument("--preset", default="small", help="model preset (default: small)")
    _add_days_and_repeats(parser, run_forecast_benchmark)


def _add_days_and_repeats(parser: argparse.ArgumentParser, func) -> None:
    """--days, --repeats, --out and --quiet of a benchmark against the dycore, run by func."""
    parser.add_argument("--days", type=positive_int, default=10)
    parser.add_argument("--repeats", type=positive_int, default=3)
    parser.add_argument("--out", metavar="FILE", help="also write the JSON to FILE")
    add_quiet_flag(parser)
    parser.set_defaults(func=func)


def run_forecast_benchmark(args: argparse.Namespace) -> int:
    from stmodel.benchmarks.forecast import benchmark_forecast

    _emit(benchmark_forecast(args.preset, args.days, args.repeats), args.out)
    return 0


def _register_ensemble(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "ensemble",
        help="what an ensemble costs: stochastic steps, CRPS training, against the dycore",
        description="Side by side in one run, random parameters, the built-in planet's data "
        "shape: member-steps per second of a stochastic network (32 noise values) stepping "
        "--batch members and its cost against the same network without noise (target: at "
        "most 1.1 x); seconds per training sample of a gradient step of the ensemble CRPS "
        "of --members members against the deterministic MSE at the same --batch (target: "
        "at most --members x); and --members members over --days from perturbed initial "
        "states by the dinosaur dynamical core (the built-in planet's T21, 60 min step) "
        "against the stochastic network (6 h steps). Compile time excluded; medians of "
        "--repeats.",
    )
    parser.add_argument("--preset", default="small", help="model preset (default: small)")
    parser.add_argument(
        "--members", type=positive_int, default=2, help="ensemble members (2 to 8; default 2)"
    )
    parser.add_argument(
        "--batch",
        type=positive_int,
        default=4,
        help="states per inference step and samples per training step (default 4)",
    )
    _add_days_and_repeats(parser, run_ensemble_benchmark)


def run_ensemble_benchmark(args: argparse.Namespace) -> int:
    from stmodel.model.config import PRESETS
    from stmodel.training.config import MethodConfig

    if args.preset not in PRESETS:
        raise UserError(
            f"bench ensemble: --preset {args.preset!r}: expected one of {', '.join(PRESETS)}"
        )
    try:  # the members the CRPS method trains
        MethodConfig(kind="ensemble_crps", members=args.members)
    except UserError as error:
        raise UserError(f"bench ensemble: --members {args.members}: {error}") from None
    if args.out:
        from stmodel.atomic_files import check_output_file

        check_output_file(args.out)  # before the minutes of work
    from stmodel.benchmarks.ensemble import benchmark_ensemble

    result = benchmark_ensemble(args.preset, args.members, args.batch, args.days, args.repeats)
    _emit(result, args.out)
    return 0


def _add_remat_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--remat",
        nargs="?",
        const="block",
        choices=("block", "dots", "dots_no_batch"),
        metavar="POLICY",
        help="per-block gradient checkpointing: keep only each block's input (block, the "
        "default), or also the outputs of every matrix product (dots) or of those without "
        "batch dimensions, i.e. the dense layers (dots_no_batch)",
    )


def _remat_value(flag: str) -> bool | str:
    """ModelConfig.remat of a --remat value."""
    return True if flag == "block" else flag


def _register_memory(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "memory",
        help="XLA's memory plan of the training step and of a forecast step, without running",
        description="Compile ahead of time, for shapes only (no parameter is materialised, "
        "nothing runs), the sharded training step (forward, backward, AdamW; parameters and "
        "optimiser state sharded along fsdp, the batch along data x fsdp, as `stmodel train` "
        "shards them) and one forecast step (one device, batch 1), and report the bytes XLA "
        "plans per device (arguments + outputs + temporaries - aliased), the breakdown, the "
        "compiled FLOPs and the compile times. Without enough accelerators it compiles for "
        "fake CPU devices, which it creates itself.",
    )
    parser.add_argument(
        "--preset",
        default="pangu",
        help="model preset: tiny, small, base, pangu (default: pangu)",
    )
    parser.add_argument("--grid", nargs=2, type=positive_int, metavar=("LAT", "LON"))
    parser.add_argument(
        "--mesh", default="1x1", metavar="DATAxFSDP", help="training mesh (default: 1x1)"
    )
    parser.add_argument(
        "--batch", type=positive_int, help="global training batch (default: one per device)"
    )
    parser.add_argument("--dtype", choices=("float32", "bfloat16"))
    _add_remat_argument(parser)
    parser.add_argument("--train-only", action="store_true", help="skip the forecast step")
    parser.add_argument("--forecast-only", action="store_true", help="skip the training step")
    parser.add_argument("--out", metavar="FILE", required=True, help="write the JSON to FILE")
    add_quiet_flag(parser)
    parser.set_defaults(func=run_memory_benchmark)


def run_memory_benchmark(args: argparse.Namespace) -> int:
    from stmodel.atomic_files import check_output_file
    from stmodel.training.sharding import parse_mesh

    if args.train_only and args.forecast_only:
        raise UserError("bench memory: --train-only and --forecast-only exclude each other")
    data, fsdp = parse_mesh(args.mesh)
    if data < 1 or fsdp < 1:
        raise UserError(f"bench memory: --mesh {args.mesh}: both sizes must be >= 1")
    batch = args.batch or data * fsdp
    if batch % (data * fsdp):
        raise UserError(
            f"bench memory: --batch {batch} is not a multiple of the {data * fsdp} devices "
            f"of the {data}x{fsdp} mesh"
        )
    overrides: dict = {}
    if args.grid:
        overrides["grid"] = args.grid
    if args.dtype:
        overrides["dtype"] = args.dtype
    if args.remat:
        overrides["remat"] = _remat_value(args.remat)
    from stmodel.model.config import ModelConfig

    try:
        config = ModelConfig.preset(args.preset, **overrides)
    except ValueError as error:
        raise UserError(f"bench memory: {error}") from None
    check_output_file(args.out)
    from stmodel.benchmarks.memory import request_host_devices

    request_host_devices(1 if args.forecast_only else data * fsdp)
    from stmodel.benchmarks.memory import benchmark_memory

    result = benchmark_memory(
        config,
        args.preset,
        (data, fsdp),
        batch,
        train=not args.forecast_only,
        forecast=not args.train_only,
    )
    _emit(result, args.out)
    return 0


def _register_model(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "model",
        help="time the network's forward pass and training step",
        description="Time one forward pass and one training step (forward, backward, AdamW) of "
        "the 3D Earth-Specific Transformer on random data: medians after warm-up, FLOPs from "
        "XLA's cost analysis, and the fraction of the measured matrix-product peak. The default "
        "is the configuration of the PyTorch reference (preset 'base': 32 x 64 grid, 13 levels, "
        "5 upper-air + 4 surface variables + 3 constant fields, patch 2 4 4, C = 192, windows "
        "2 6 12, batch 1). Flags override the preset.",
    )
    parser.add_argument(
        "--preset",
        default="base",
        help="starting configuration: tiny, small, base, pangu (default: base)",
    )
    parser.add_argument("--grid", nargs=2, type=positive_int, metavar=("LAT", "LON"))
    parser.add_argument("--levels", type=positive_int, metavar="N", help="pressure levels")
    parser.add_argument("--upper-vars", type=positive_int, metavar="N")
    parser.add_argument("--surface-vars", type=positive_int, metavar="N")
    parser.add_argument("--constants", type=non_negative_int, metavar="N", help="constant fields")
    parser.add_argument("--patch", nargs=3, type=positive_int, metavar=("P", "LAT", "LON"))
    parser.add_argument("--dim", type=positive_int, metavar="C", help="width of the first stage")
    parser.add_argument("--depths", nargs=4, type=positive_int, metavar="D")
    parser.add_argument("--heads", nargs=4, type=positive_int, metavar="H")
    parser.add_argument("--window", nargs=3, type=positive_int, metavar=("P", "LAT", "LON"))
    parser.add_argument("--dtype", choices=("float32", "bfloat16"))
    parser.add_argument(
        "--attention",
        choices=("auto", "tuned", "fused"),
        help="window attention: written out (tuned, the CPU default), "
        "jax.nn.dot_product_attention (fused, the GPU/TPU default) or auto",
    )
    _add_remat_argument(parser)
    parser.add_argument("--pre-norm", action="store_true", help="pre-norm instead of post-norm")
    parser.add_argument("--batch", type=positive_int, default=1)
    parser.add_argument(
        "--repeats", type=positive_int, default=5, help="timed calls (median reported)"
    )
    parser.add_argument(
        "--warmup", type=non_negative_int, default=2, help="untimed calls before timing"
    )
    parser.add_argument("--forward-only", action="store_true", help="skip the training step")
    parser.add_argument(
        "--no-peak", action="store_true", help="skip measuring the matrix-product peak (no MFU)"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="add the time per XLA operation group (matrix products, softmax, "
        "data movement, ...) from a jax.profiler trace; the per-operation "
        "trace events slow the timings of the same run, so time without it",
    )
    parser.add_argument("--out", metavar="FILE", help="also write the JSON to FILE")
    add_quiet_flag(parser)
    parser.set_defaults(func=run_model_benchmark)


def model_config_from_args(args: argparse.Namespace) -> ModelConfig:
    from stmodel.model.config import ModelConfig

    flags = {
        "grid": "grid",
        "levels": "n_levels",
        "upper_vars": "n_upper_vars",
        "surface_vars": "n_surface_vars",
        "constants": "n_constant_fields",
        "patch": "patch",
        "dim": "dim",
        "depths": "depths",
        "heads": "heads",
        "window": "window",
        "dtype": "dtype",
        "attention": "attention",
    }
    overrides = {
        field: getattr(args, flag)
        for flag, field in flags.items()
        if getattr(args, flag) is not None
    }
    if args.remat:
        overrides["remat"] = _remat_value(args.remat)
    if args.pre_norm:
        overrides["post_norm"] = False
    try:
        return ModelConfig.preset(args.preset, **overrides)
    except ValueError as error:
        raise UserError(f"bench model: {error}") from None


def run_model_benchmark(args: argparse.Namespace) -> int:
    if args.batch < 1 or args.repeats < 1 or args.warmup < 0:
        raise UserError("bench model: --batch and --repeats must be >= 1, --warmup >= 0")
    config = model_config_from_args(args)
    if args.profile:
        from stmodel.benchmarks.xla_profile import enable_cpu_op_events

        enable_cpu_op_events()  # before anything starts jax's backend
    from stmodel.benchmarks.model import benchmark_model

    result = benchmark_model(
        config,
        batch=args.batch,
        repeats=args.repeats,
        warmup=args.warmup,
        train=not args.forward_only,
        peak=not args.no_peak,
        profile=args.profile,
    )
    _emit(result, args.out)
    return 0


def _emit(result: dict, out: str | None) -> None:
    """The JSON line to stdout, and to `out` (whole or not at all) when given."""
    line = json.dumps(result)
    print(line, flush=True)
    if out:
        with atomic_path(out) as temporary:
            temporary.write_text(line + "\n")
        logger.info("wrote %s", out)
