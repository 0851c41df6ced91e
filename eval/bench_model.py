"""The network at the PyTorch reference configuration, written to eval/results/bench_model.json.

    python eval/bench_model.py [--repeats 10] [--out eval/results/bench_model.json]

Runs `stmodel bench model` (the same code, in this process) in float32 and in
bfloat16 at the default configuration (preset 'base': 32 x 64 grid, 13 levels,
C = 192, windows (2, 6, 12), batch 1), then the 'small' preset (the CPU default)
in float32, adds the parameter count of the 'pangu' preset (built abstractly),
and writes everything as one JSON document. The per-operation profiles come
from separate `stmodel bench model --profile` processes: XLA's per-operation
trace events slow every operation, so timings are taken without them. Run it on
a quiet machine: the load average before and after each run is recorded.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stmodel.atomic_files import atomic_path
from stmodel.benchmarks.model import benchmark_model
from stmodel.cli import configure_logging
from stmodel.model.config import ModelConfig
from stmodel.model.earth_transformer import abstract_model, count_parameters

logger = logging.getLogger("stmodel.eval.bench_model")

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "bench_model.json"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--repeats", type=int, default=10, help="timed calls per figure; their median is reported"
    )
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    configure_logging()

    runs = {}
    for dtype in ("float32", "bfloat16"):
        logger.info("bench_model.py: preset base, %s", dtype)
        runs[dtype] = benchmark_model(
            ModelConfig.preset("base", dtype=dtype),
            batch=1,
            repeats=args.repeats,
            warmup=args.warmup,
        )
    logger.info("bench_model.py: preset small (the CPU default), float32")
    small = benchmark_model(
        ModelConfig.preset("small"), batch=1, repeats=args.repeats, warmup=args.warmup
    )
    pangu = count_parameters(abstract_model(ModelConfig.preset("pangu")))
    for dtype in runs:
        logger.info("bench_model.py: per-operation profile, %s (separate process)", dtype)
        profiled = _profile_in_subprocess(dtype)
        runs[dtype].update(
            {key: profiled[key] for key in ("profile_forward", "profile_train_step")}
        )
        runs[dtype]["profile_note"] = (
            f"from `stmodel bench model --profile --dtype {dtype}`, a separate run with XLA's "
            f"per-operation trace events on (forward {profiled['forward_s']:.3f} s, "
            f"step {profiled['train_step_s']:.3f} s there)"
        )
    document = {
        "command": "python eval/bench_model.py (= stmodel bench model [--dtype bfloat16]; "
        "stmodel bench model --preset small; profiles from --profile runs)",
        "float32": runs["float32"],
        "bfloat16": runs["bfloat16"],
        "small_preset_float32": small,
        "pangu_preset_params": pangu,
    }
    with atomic_path(args.out) as temporary:
        temporary.write_text(json.dumps(document, indent=1) + "\n")
    summary = {
        dtype: {
            k: runs[dtype].get(k)
            for k in (
                "forward_s",
                "train_step_s",
                "speedup_forward_vs_reference",
                "speedup_train_vs_reference",
                "mfu_forward",
                "mfu_train",
            )
        }
        for dtype in runs
    }
    print(json.dumps(summary))
    logger.info("bench_model.py: wrote %s", args.out)
    return 0


def _profile_in_subprocess(dtype: str) -> dict:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "stmodel",
            "bench",
            "model",
            "--profile",
            "--dtype",
            dtype,
            "--repeats",
            "2",
            "--warmup",
            "1",
            "--no-peak",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    sys.exit(main())
