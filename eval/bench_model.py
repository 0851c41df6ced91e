"""Run `stmodel bench model` as a script: python eval/bench_model.py [flags] (see --help)."""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stmodel.commands import bench  # noqa: E402
from stmodel.errors import UserError  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench_model.py")
    bench.register(parser.add_subparsers(required=True))
    args = parser.parse_args(["bench", "model", *sys.argv[1:]])
    try:
        return args.func(args)
    except UserError as error:
        print(f"bench_model.py: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
