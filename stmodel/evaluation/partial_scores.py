"""Per-variable scores kept on disk while an evaluation runs, so an interrupted one resumes.

Each finished variable's per-init scores go to ``<out>/.partial_scores/<variable>.nc``
tagged with a fingerprint of the inputs, of the metrics scored and of the baselines'
settings; a rerun with the same inputs, metrics and settings reuses them, any change
to an input (path, size, modification time), to the metric set or to the settings
(the probabilistic climatology's members or seed) recomputes.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

import xarray as xr

from stmodel.atomic_files import atomic_path
from stmodel.evaluation.metric_registry import DETERMINISTIC

DIRECTORY_NAME = ".partial_scores"
FINGERPRINT_ATTRIBUTE = "stmodel_inputs_fingerprint"


def _describe_file(path: str | Path) -> list:
    path = Path(path)
    if not path.exists():
        return [str(path)]  # a glob or other pattern the reader expands
    stat = path.stat()
    return [str(path.resolve()), stat.st_size, stat.st_mtime_ns]


def fingerprint(
    forecast: str | Path,
    truth: Sequence[str | Path],
    climatology: str | Path | None,
    variable: str,
    model_name: str,
    metrics: Sequence[str] = DETERMINISTIC,
    baselines: Mapping | None = None,
) -> str:
    """A hash of everything a variable's scores depend on, the metric names included
    (saved parts of another metric set are stale: missing metrics, or extra ones), and
    ``baselines``, the settings of the baselines beyond the files (JSON-able: the
    probabilistic climatology's members and seed, which change its scores and whether
    it is stored at all)."""
    description = {
        "forecast": _describe_file(forecast),
        "truth": [_describe_file(path) for path in truth],
        "climatology": None if climatology is None else _describe_file(climatology),
        "variable": variable,
        "model_name": model_name,
        "metrics": list(metrics),
        "baselines": None if baselines is None else dict(baselines),
    }
    return hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()


def partial_path(out_dir: str | Path, variable: str) -> Path:
    return Path(out_dir) / DIRECTORY_NAME / f"{variable}.nc"


def load(out_dir: str | Path, variable: str, expected_fingerprint: str) -> xr.Dataset | None:
    """The saved per-init scores of ``variable`` if they were made from the same inputs."""
    path = partial_path(out_dir, variable)
    if not path.exists():
        return None
    try:
        with xr.open_dataset(path, decode_timedelta=True) as saved:
            if saved.attrs.get(FINGERPRINT_ATTRIBUTE) != expected_fingerprint:
                return None
            return saved.load()
    except (OSError, ValueError):
        return None  # unreadable leftovers are recomputed


def save(per_init: xr.Dataset, out_dir: str | Path, variable: str, fingerprint_value: str) -> None:
    """Write the per-init scores of ``variable`` (atomically: temporary file, then rename)."""
    with atomic_path(partial_path(out_dir, variable)) as temporary:
        per_init.assign_attrs({FINGERPRINT_ATTRIBUTE: fingerprint_value}).to_netcdf(temporary)


def clear(out_dir: str | Path) -> None:
    """Remove the saved per-variable scores once the scorecard is written."""
    shutil.rmtree(Path(out_dir) / DIRECTORY_NAME, ignore_errors=True)
