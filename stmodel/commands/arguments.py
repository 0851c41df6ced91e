"""Arguments shared by the commands: counts that must be positive or not negative, and
the --quiet flag every command takes."""

from __future__ import annotations

import argparse


def add_quiet_flag(parser: argparse.ArgumentParser, *aliases: str) -> None:
    """`--quiet`: no progress bars or status messages (stmodel.cli sets the log level from it).

    Warnings and errors still print, and so do the command's results on stdout.
    """
    parser.add_argument(
        "--quiet",
        *aliases,
        dest="quiet",
        action="store_true",
        help="no progress bars or status messages (warnings and errors still print)",
    )


def positive_int(text: str) -> int:
    return _int_at_least(text, 1, "a positive whole number")


def non_negative_int(text: str) -> int:
    return _int_at_least(text, 0, "a whole number, 0 or more")


def _int_at_least(text: str, smallest: int, expected: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < smallest:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value
