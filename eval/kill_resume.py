"""Kill `stmodel train` with SIGKILL at random moments, resume, and compare with a run never
killed: the final parameters must be bit-identical.

    python eval/kill_resume.py --data runs/tiny.nc --kills 20 --steps 100 \
        --out eval/results/kill_resume.json

Half the kills come at moments drawn uniformly over the first third of an uninterrupted
run's length (start-up, compilation, steps and saves alike; a third, so that the work left
outlasts the kills), the other half as soon as a checkpoint write is seen under way
(orbax's temporary folder exists; checkpoints are written every step). After every kill the
same command runs again, from whatever the killed run left. Prints one JSON object (and
writes it to --out).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
# A very small network: this is about the training machinery, not the model.
TINY_NETWORK = (
    "model_overrides.depths=[1,1,1,1]",
    "model_overrides.dim=16",
    "model_overrides.heads=[1,2,2,1]",
)


def train_command(data: Path, workdir: Path, steps: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "stmodel",
        "train",
        "--config",
        "tiny",
        "--data",
        str(data),
        "--workdir",
        str(workdir),
        "--steps",
        str(steps),
        "--quiet",
        "checkpoint_every=1",
        "validate_every=3",
        *TINY_NETWORK,
    ]


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=str(REPO), JAX_PLATFORMS="cpu")


def _run(command: list[str]) -> None:
    subprocess.run(command, cwd=REPO, env=_env(), check=True, capture_output=True)


def _checksum(workdir: Path) -> str:
    return json.loads((workdir / "summary.json").read_text())["parameter_checksum"]


def kill_and_resume(data: Path, folder: Path, kills: int, steps: int = 8, seed: int = 0) -> dict:
    """`kills` SIGKILLs of one training run, then a last run to the end; compared with a run
    never killed."""
    reference = folder / "uninterrupted"
    started = time.perf_counter()
    _run(train_command(data, reference, steps))
    run_seconds = time.perf_counter() - started

    workdir = folder / "killed"
    command = train_command(data, workdir, steps)
    rng = np.random.default_rng(seed)
    moments, in_write, finished_before_kill = [], 0, 0
    for kill in range(kills):
        at_a_write = kill % 2 == 1
        deadline = time.perf_counter() + float(rng.uniform(0.0, run_seconds / 3))
        started = time.perf_counter()
        # A killed write leaves its temporary folder until the next run starts: only new
        # ones mean a write under way.
        left_before = set((workdir / "checkpoints").glob("*tmp*"))
        process = subprocess.Popen(
            command, cwd=REPO, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        writing = False
        while process.poll() is None:
            writing = bool(set((workdir / "checkpoints").glob("*tmp*")) - left_before)
            if writing if at_a_write else time.perf_counter() >= deadline:
                break
            time.sleep(0.002)
        if process.poll() is not None:  # it ended before the kill: it must have succeeded
            error = process.stderr.read().decode()
            if process.returncode != 0:
                raise RuntimeError(f"run {kill} failed ({process.returncode}):\n{error[-3000:]}")
            finished_before_kill += 1
            continue
        process.send_signal(signal.SIGKILL)
        process.wait()
        in_write += writing
        moments.append(round(time.perf_counter() - started, 2))
    _run(command)
    return {
        "kills": len(moments),
        "kills_during_a_checkpoint_write": in_write,
        "runs_that_finished_before_their_kill": finished_before_kill,
        "kill_moments_s": moments,
        "uninterrupted_run_s": round(run_seconds, 1),
        "steps": steps,
        "bit_identical": _checksum(workdir) == _checksum(reference),
        "leftover_temporary_files": sorted(
            str(p.relative_to(workdir)) for p in workdir.rglob("*tmp*")
        ),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="e.g. the tiny simulation")
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        result = kill_and_resume(
            args.data.resolve(), Path(folder), args.kills, args.steps, args.seed
        )
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0 if result["bit_identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
