"""The `stmodel` command line: one parser, subcommand groups registered by modules."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from stmodel.errors import UserError

# Each module defines `register(subparsers)`, adding its subcommands; every
# subcommand sets `func(args) -> int | None` as its default. `args.argv` holds the
# arguments as given (for commands that record their own command line).
COMMAND_MODULES = (
    "stmodel.commands.data",
    "stmodel.commands.train",
    "stmodel.commands.forecast",
    "stmodel.commands.evaluate",
    "stmodel.commands.bench",
    "stmodel.commands.downscale",
    "stmodel.commands.demo",
    "stmodel.commands.models",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stmodel",
        description="A JAX-native 3D Earth-Specific Transformer (Pangu-Weather style) for gridded "
        "weather data: prepare data, train, forecast, evaluate, downscale.",
    )
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(argv) if argv is not None else sys.argv[1:]
    try:
        return int(args.func(args) or 0)
    except UserError as error:
        print(f"stmodel: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("stmodel: interrupted; finished outputs are kept, partial ones were removed",
              file=sys.stderr)
        return 130
