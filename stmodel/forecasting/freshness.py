"""Whether a forecast already on disk is the one these models would write: what lets the
demo skip a forecast stage when it is rerun."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import xarray as xr

from stmodel.models import resolve_checkpoint


def forecast_is_current(path: Path, checkpoints: Sequence[str], expected: dict) -> bool:
    """Whether `path` is a forecast newer than each of these models whose global attributes
    hold every item of `expected`."""
    if not path.exists():
        return False
    for checkpoint in map(resolve_checkpoint, checkpoints):
        # A training run's summary, or a shipped model's weights: when the model last changed.
        marker = checkpoint / "summary.json"
        marker = marker if marker.exists() else checkpoint / "arrays.npz"
        if path.stat().st_mtime < marker.stat().st_mtime:
            return False
    with xr.open_dataset(path) as forecast:
        return all(forecast.attrs.get(key) == value for key, value in expected.items())
