"""`stmodel train` and `stmodel checkpoint info`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from stmodel.commands.arguments import add_quiet_flag, non_negative_int, positive_int


def register(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser(
        "train",
        help="train or fine-tune the model (resumes from the workdir)",
        description="Train the 3D Earth-Specific Transformer on canonical-form data. Running the "
        "same command again resumes exactly from the newest checkpoint in --workdir. SIGTERM "
        "saves and exits; a NaN loss stops with the last good checkpoint kept.",
        epilog="Settings: a preset shipped in stmodel/presets/ (tiny, cpu-small, pangu-0.25, "
        "...) or a TOML file, then key=value overrides such as optimizer.learning_rate=1e-3 "
        "batch_size=4 model_overrides.dim=96. Multi-host: --coordinator, --num-processes, "
        "--process-id (or "
        "STMODEL_COORDINATOR/STMODEL_NUM_PROCESSES/STMODEL_PROCESS_ID; STMODEL_DISTRIBUTED=auto "
        "for JAX's detection on TPU pods and SLURM).",
    )
    train.add_argument("--config", required=True, help="preset name or TOML file")
    train.add_argument(
        "--data",
        nargs="+",
        required=True,
        metavar="PATH",
        help="data files (any style `stmodel data check` reads)",
    )
    train.add_argument(
        "--workdir",
        required=True,
        type=Path,
        help="checkpoints, statistics, metrics.jsonl and summary.json go here",
    )
    train.add_argument("--steps", type=non_negative_int, help="total steps (overrides the config)")
    train.add_argument(
        "--mesh", help="DATAxFSDP device mesh, e.g. 4x2 (default: all devices on the data axis)"
    )
    train.add_argument("--coordinator", help="HOST:PORT of process 0 for multi-host runs")
    train.add_argument("--num-processes", type=positive_int)
    train.add_argument("--process-id", type=non_negative_int)
    add_quiet_flag(train)
    train.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    train.set_defaults(func=run_train)

    checkpoint = subparsers.add_parser(
        "checkpoint", help="inspect checkpoints", description="Inspect training checkpoints."
    )
    commands = checkpoint.add_subparsers(
        title="checkpoint commands", metavar="COMMAND", required=True
    )
    info = commands.add_parser(
        "info",
        help="step, config and parameter checksum",
        description="Print the step, the configs and a SHA-256 checksum "
        "of the parameters of the newest (or a given) checkpoint.",
    )
    info.add_argument(
        "directory",
        type=Path,
        help="training workdir, its checkpoints/ folder, or a shipped model's name",
    )
    info.add_argument("--step", type=non_negative_int, help="a specific step (default: newest)")
    info.add_argument("--json", action="store_true", help="print JSON")
    add_quiet_flag(info)
    info.set_defaults(func=run_checkpoint_info)


def run_train(args) -> int:
    from stmodel.atomic_files import check_not_an_input
    from stmodel.training import distributed, sharding
    from stmodel.training.config import load_config
    from stmodel.training.forecasting_task import train

    check_not_an_input(args.workdir, args.data, "--workdir")
    distributed.initialize(args.coordinator, args.num_processes, args.process_id)
    config = load_config(args.config, args.overrides)
    mesh = sharding.parse_mesh(args.mesh) if args.mesh else None
    result = train(
        config, args.data, args.workdir, steps=args.steps, mesh_shape=mesh, progress=not args.quiet
    )
    import jax

    if jax.process_index() == 0:
        print(json.dumps({"workdir": str(args.workdir), **result.metrics}, indent=2))
    # Stopped by a signal after saving: exit as schedulers expect (128 + signal), so that
    # `stmodel train ... && stmodel forecast ...` stops and preempted jobs are requeued.
    return 128 + result.stopped_by if result.stopped_by else 0


def run_checkpoint_info(args) -> int:
    from stmodel.checkpoints.global_model import CheckpointModel
    from stmodel.checkpoints.store import parameter_checksum

    model = CheckpointModel.load(args.directory, step=args.step)
    info = {
        "directory": str(args.directory),
        "step": model.step,
        "parameter_checksum": parameter_checksum(model.params),
        "n_parameters": model.n_parameters,
        "train_config": model.train_config,
        "model_config": model.model_config.to_dict(),
        "layout": model.layout.to_dict(),
        "dt_hours": model.dt_hours,
    }
    config = model.train_config
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(
            f"step {info['step']}  parameters {info['n_parameters']:,}  checksum "
            f"{info['parameter_checksum'][:16]}  dt {info['dt_hours']} h\n"
            f"config {config.get('name')}: model {config.get('model_preset')} "
            f"{json.dumps(info['model_config'])}"
        )
    return 0
