"""`stmodel models`: the pretrained models shipped with the package; export a new one."""

from __future__ import annotations

import argparse
from pathlib import Path

from stmodel.commands.arguments import add_quiet_flag


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "models",
        help="list the pretrained models shipped with stmodel",
        description="List the pretrained models shipped inside the package. Any of their names "
        "works wherever a command takes --checkpoint (or --pretrained), e.g. "
        "`stmodel forecast --checkpoint stmodel-small-24h stmodel-small-6h ...`; "
        "`stmodel forecast` without --checkpoint uses the default pair.",
    )
    add_quiet_flag(parser)
    parser.set_defaults(func=run_list)
    actions = parser.add_subparsers(title="actions", metavar="ACTION")
    export = actions.add_parser(
        "export",
        help="write a training checkpoint as a shipped-model folder (parameters only)",
        description="Write the parameters (EMA weights where the run kept them), statistics, "
        "constants and grid of a training checkpoint, without optimiser state, as a folder "
        "that --checkpoint accepts: model.json, arrays.npz and MODEL_CARD.md.",
    )
    export.add_argument("checkpoint", type=Path, help="training workdir")
    export.add_argument(
        "--out",
        required=True,
        type=Path,
        metavar="DIR",
        help="folder to write: new, empty, or a shipped-model folder (replaced whole); a "
        "folder holding other files is refused",
    )
    export.add_argument(
        "--card",
        required=True,
        type=Path,
        metavar="FILE",
        help="Markdown model card to ship beside the weights",
    )
    export.add_argument("--summary", default="", help="one line for `stmodel models`")
    export.add_argument(
        "--dtype",
        choices=("float32", "bfloat16"),
        default="bfloat16",
        help="storage type of the parameters (default bfloat16)",
    )
    add_quiet_flag(export)
    export.set_defaults(func=run_export)


def run_list(args) -> int:
    from stmodel.models import DEFAULT_MODELS, shipped_models

    models = shipped_models()
    if not models:
        print("no pretrained models are shipped with this installation")
        return 0
    width = max(len(m.name) for m in models)
    for model in models:
        default = "  (default)" if model.name in DEFAULT_MODELS else ""
        print(f"{model.name:{width}s}  {model.dt_hours:3d} h  {model.summary}{default}")
        print(f"{'':{width}s}  card: {model.path / 'MODEL_CARD.md'}")
    return 0


def run_export(args) -> int:
    from stmodel.atomic_files import check_not_an_input, check_replaceable_folder
    from stmodel.checkpoints.global_model import CheckpointModel
    from stmodel.errors import UserError
    from stmodel.models import is_shipped_model_folder, write_pretrained

    if not args.card.is_file():
        raise UserError(f"--card {args.card}: no such file")
    check_not_an_input(args.out, [args.checkpoint], replaces_folder=True)
    check_replaceable_folder(args.out, is_shipped_model_folder, "a shipped-model folder")
    model = CheckpointModel.load(args.checkpoint)
    params, static = model.pretrained_arrays()
    meta = {
        "summary": args.summary,
        "step": model.step,
        "dt_hours": model.dt_hours,
        "train_config": model.train_config,
        "model_config": model.model_config.to_dict(),
        "layout": model.layout.to_dict(),
    }
    write_pretrained(args.out, meta, params, static, args.dtype, args.card.read_text())
    size = sum(p.stat().st_size for p in args.out.iterdir()) / 1e6
    print(
        f"wrote {args.out} ({model.n_parameters:,} parameters in {args.dtype}, "
        f"{size:.1f} MB, step {model.step})"
    )
    return 0
