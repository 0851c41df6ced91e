"""The `stmodel` command line: one parser, subcommand groups registered by modules."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import sys
import traceback
from collections.abc import Sequence

from tqdm import tqdm

import stmodel
from stmodel.errors import Interrupted, UserError

# Each module defines `register(subparsers)`, adding its subcommands; every
# subcommand sets `func(args) -> int | None` as its default and takes --quiet
# (stmodel.commands.arguments.add_quiet_flag). `args.argv` holds the arguments as
# given (for commands that record their own command line).
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


class OneLineErrors(argparse.ArgumentParser):
    """Command-line mistakes in one line, as every other user error (exit code 2).

    Subcommand parsers are of the same class (argparse's default for add_subparsers).
    """

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrors(
        prog="stmodel",
        description="A JAX-native 3D Earth-Specific Transformer (Pangu-Weather style) for gridded "
        "weather data: prepare data, train, forecast, evaluate, downscale.",
    )
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


class _StatusFormatter(logging.Formatter):
    """`stmodel: message`; warnings and errors say what they are, as `stmodel: warning: ...`."""

    def format(self, record: logging.LogRecord) -> str:
        message = super().format(record)
        if record.levelno >= logging.WARNING:
            message = f"{record.levelname.lower()}: {message}"
        return f"stmodel: {message}"


class _BesideProgressBars(logging.Handler):
    """Writes to the stderr of the moment (tests and notebooks replace it), through tqdm so
    that a progress bar on the screen is moved below the line instead of broken by it."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:
            self.handleError(record)


_STATUS_HANDLER = _BesideProgressBars()
_STATUS_HANDLER.setFormatter(_StatusFormatter())


def configure_logging(quiet: bool = False) -> None:
    """Status messages of the `stmodel` loggers to stderr: INFO and up, or with `quiet`
    warnings and errors only. Calling it again (another command in the same process) only
    sets the level."""
    logger = logging.getLogger("stmodel")
    logger.addHandler(_STATUS_HANDLER)  # once: adding the same handler again does nothing
    logger.setLevel(logging.WARNING if quiet else logging.INFO)
    # The command owns stderr: a handler the host program put on the root logger (a
    # notebook's, say) would print every line a second time.
    logger.propagate = False


def _report(error: Exception) -> None:
    """One line, even where a library's message inside it spans several."""
    print(f"stmodel: error: {' '.join(str(error).split())}", file=sys.stderr)


def _is_override(item: str) -> bool:
    key, sep, _ = item.partition("=")
    return bool(sep) and key.replace(".", "_").isidentifier()


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:  # argument types that parse with the library's own checks raise UserError
        args, extras = parser.parse_known_args(argv)
    except UserError as error:
        _report(error)
        return 2
    # KEY=VALUE overrides may stand anywhere, also after options (argparse takes a
    # positional list only in one piece).
    overrides = [item for item in extras if _is_override(item)]
    if overrides and hasattr(args, "overrides"):
        args.overrides = [*args.overrides, *overrides]
        extras = [item for item in extras if not _is_override(item)]
    if extras:
        parser.error(f"unrecognized arguments: {' '.join(extras)}")
    args.argv = list(argv) if argv is not None else sys.argv[1:]
    configure_logging(quiet=args.quiet)
    try:
        return int(args.func(args) or 0)
    except UserError as error:
        _report(error)
        return 2
    except Interrupted as stop:
        print(f"stmodel: {stop}", file=sys.stderr)
        return 128 + stop.signum
    except KeyboardInterrupt:
        print(
            "stmodel: interrupted; finished outputs are kept, partial ones were removed",
            file=sys.stderr,
        )
        return 130
    except BrokenPipeError:  # the reader of our output left (`stmodel models | head`)
        # Python's flush at exit would fail on the closed pipe again.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as error:  # the machine's, not the user's or ours: disk full, I/O error
        where = f"{error.filename}: " if error.filename else ""
        print(f"stmodel: error: {where}{error.strerror or error}", file=sys.stderr)
        return 2
    except Exception:
        traceback.print_exc()
        print(
            f"stmodel: this is a bug in stmodel {stmodel.__version__}, not a mistake of "
            "yours; please report it with the command line and the traceback above",
            file=sys.stderr,
        )
        return 1
