"""`stmodel bench forecast-memory`: a forecast's peak memory does not grow with its size.

Runs ``stmodel forecast`` in a fresh process for a few and for many initial times (the
same lead and --batch), writing NetCDF and Zarr, and reports each run's peak resident
memory (from the kernel's accounting of that one child, os.wait4) and wall time. The
rollout holds one batch of states and writes each lead as it comes, so the peak should
stay flat while the output grows with the number of initial times.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import xarray as xr

from stmodel.errors import UserError

logger = logging.getLogger(__name__)


def tiled_data(path: Path, n_times: int, workdir: Path) -> Path:
    """``path`` if it has ``n_times`` times, else a copy repeated along time (each repeat
    shifted to follow the last), so there are enough 6-hourly initial times."""
    with xr.open_dataset(path) as ds:
        if ds.sizes["time"] >= n_times:
            return path
        ds = ds.load()
    times = ds["time"].values
    span = times[-1] - times[0] + (times[1] - times[0])
    copies = [ds.assign_coords(time=times + i * span) for i in range(-(-n_times // len(times)))]
    tiled = workdir / f"{path.stem}-x{len(copies)}.nc"
    xr.concat(copies, dim="time", data_vars="minimal", coords="minimal").to_netcdf(tiled)
    return tiled


def run_measured(argv: Sequence[str]) -> dict:
    """Run ``argv``; its wall time and peak resident memory (its own, not this process's
    nor an earlier child's: getrusage(RUSAGE_CHILDREN) would give the largest so far)."""
    start = time.perf_counter()
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stderr = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if child.returncode:
        raise UserError(
            f"bench forecast-memory: {' '.join(argv[2:])} failed ({child.returncode}): "
            + " ".join(stderr.decode(errors="replace").split())[-500:]
        )
    return {"wall_s": round(wall, 2), "peak_rss_mib": round(usage.ru_maxrss / 1024, 1)}


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def benchmark_forecast_memory(
    data: str | Path | None = None,
    *,
    inits: Sequence[int] = (4, 40),
    lead: str = "10d",
    batch: int = 4,
    formats: Sequence[str] = (".nc", ".zarr"),
    workdir: str | Path | None = None,
    checkpoints: Sequence[str] = (),
) -> dict:
    """Peak RSS and wall time of `stmodel forecast` per (format, number of initial times);
    a JSON-ready dict. Without `data`, the tiny simulation is made in `workdir`."""
    temporary = None if workdir else tempfile.mkdtemp(prefix="stmodel-forecast-memory-")
    workdir = Path(workdir or temporary)
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        if data is None:
            from stmodel.simulation import generate

            data = workdir / "tiny.nc"
            logger.info("simulating the tiny preset into %s", data)
            generate("tiny", data, progress=False)
        source = tiled_data(Path(data), max(inits), workdir)
        with xr.open_dataset(source) as ds:
            times = ds["time"].values
        step = (times[1] - times[0]) / np.timedelta64(1, "h")
        runs = []
        for suffix in formats:
            for n in inits:
                out = workdir / f"forecast-{n}{suffix}"
                init = f"{str(times[0])[:13]}/{str(times[n - 1])[:13]}/{step:g}h"
                argv = [sys.executable, "-m", "stmodel", "forecast", "--data", str(source)]
                argv += ["--init", init, "--lead", lead, "--batch", str(batch)]
                argv += ["--out", str(out), "--quiet"]
                if checkpoints:
                    argv += ["--checkpoint", *checkpoints]
                logger.info("forecast: %d initial times, %s, to %s", n, lead, out.name)
                run = {"format": suffix, "initial_times": n, **run_measured(argv)}
                run["output_mib"] = round(_size(out) / 2**20, 1)
                runs.append(run)
                logger.info("%s", run)
                shutil.rmtree(out) if out.is_dir() else out.unlink()
    finally:
        if temporary:
            shutil.rmtree(temporary, ignore_errors=True)
    few, many = min(inits), max(inits)
    ratios = {}
    for suffix in formats:
        by_n = {r["initial_times"]: r for r in runs if r["format"] == suffix}
        ratios[suffix] = {
            "peak_rss": round(by_n[many]["peak_rss_mib"] / by_n[few]["peak_rss_mib"], 3),
            "output_size": round(by_n[many]["output_mib"] / by_n[few]["output_mib"], 2),
            "wall_time": round(by_n[many]["wall_s"] / by_n[few]["wall_s"], 2),
        }
    return {
        "benchmark": "forecast-memory",
        "data": str(data),
        "lead": lead,
        "batch": batch,
        "checkpoints": list(checkpoints) or "default (stmodel-small-24h + stmodel-small-6h)",
        "runs": runs,
        f"ratio_{many}_over_{few}": ratios,
        "cpu_count": os.cpu_count(),
        "load_average": list(os.getloadavg()),
    }
