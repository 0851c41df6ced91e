"""`stmodel data ...`: generate, check, convert and summarise gridded data."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "data", help="generate, check, convert and compute statistics of gridded data",
        description="Prepare gridded data for stmodel.")
    data_subparsers = parser.add_subparsers(title="data commands", metavar="COMMAND", required=True)
    del data_subparsers
