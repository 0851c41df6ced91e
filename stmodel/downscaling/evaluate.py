"""`stmodel downscale evaluate`: RMSE and bias against the fine truth, per variable and
level, for fine-tuned models beside the interpolation baselines.

Baselines: nearest, bilinear and bicubic interpolation of the coarse field, and
bilinear plus the mean residual (fine truth minus bilinear) of the first
model's training period. Scores follow WeatherBench 2: per time, the
area-weighted mean over the region of the squared error (or the error, for the
bias); then the mean over times; the square root last. ``rmse_unweighted``
weighs every fine cell alike, as plain image-resampling benchmarks do.

With ``corner_aligned`` the four baselines are also computed as
``scipy.ndimage.zoom`` computes them by default (coarse end values stretched onto
the end fine points; see :mod:`stmodel.downscaling.baselines`), named
``<baseline>_corner_aligned``: the protocol of published figures such as those
of the ERA5 sample's README. It needs a coarse file that is the block-mean
coarsening of exactly the region (``stmodel downscale coarsen --region``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from stmodel.atomic_files import atomic_path
from stmodel.data.pipeline import SplitPeriod, split_periods
from stmodel.downscaling.baselines import METHODS, GridInterpolator
from stmodel.downscaling.checkpoint import DownscalingCheckpoint
from stmodel.downscaling.data import PairReader, RegionalPair, grid_spacing, open_pair
from stmodel.downscaling.inputs import time_channels
from stmodel.errors import UserError
from stmodel.evaluation.area_weights import (
    area_weighted_mean,
    area_weighted_mse,
    area_weights,
)

BASELINES = ("nearest", "bilinear", "bicubic", "bilinear_mean_residual")
CORNER_SUFFIX = "_corner_aligned"
RESIDUAL_CHUNK = 64  # training samples read at a time for the corner-aligned mean residual
CONVENTIONS = {
    "rmse": "per time the area-weighted (cos latitude cell area) mean over the region of the "
    "squared error, then the mean over times, the square root last (WeatherBench 2)",
    "rmse_unweighted": "as rmse with every fine cell weighted alike",
    "bias": "area-weighted mean error (prediction - truth)",
    "baselines": "interpolation of the coarse cells from their centres (cell-centred, "
    "half-sample symmetric beyond the outermost centres); bilinear_mean_residual "
    "adds the mean of fine - bilinear over the first model's training period",
    "corner_aligned": "baselines as scipy.ndimage.zoom(coarse, factor, order, mode='nearest') "
    "computes them: the first and last coarse values on the first and last "
    "fine cells",
}
# Fields printed first in the table (when present).
KEY_FIELDS = (
    "temperature_850",
    "u_component_of_wind_850",
    "v_component_of_wind_850",
    "geopotential_500",
    "2m_temperature",
)


def channel_names(checkpoint: DownscalingCheckpoint) -> list[str]:
    layout = checkpoint.layout
    upper = [f"{v}_{level}" for level in layout.levels for v in layout.upper_air]
    return upper + list(layout.surface)


def _channels(upper: np.ndarray, surface: np.ndarray) -> np.ndarray:
    """upper [batch, level, lat, lon, var], surface [batch, lat, lon, var]
    -> [batch, lat, lon, channel]
    in the order of :func:`channel_names` (level-major)."""
    batch, n_level, n_lat, n_lon, n_var = upper.shape
    upper = np.moveaxis(upper, 1, 3).reshape(batch, n_lat, n_lon, n_level * n_var)
    return np.concatenate([upper, surface], axis=-1)


def _check_compatible(checkpoints: Mapping[str, DownscalingCheckpoint]) -> DownscalingCheckpoint:
    names = list(checkpoints)
    first = checkpoints[names[0]]
    for name in names[1:]:
        other = checkpoints[name]
        if (
            other.box.text() != first.box.text()
            or other.layout != first.layout
            or not np.allclose(other.grids["fine_lat"], first.grids["fine_lat"])
            or not np.allclose(other.grids["fine_lon"], first.grids["fine_lon"])
        ):
            raise UserError(
                f"checkpoint {name!r} downscales another region, grid or set of "
                f"variables than {names[0]!r}; evaluate them separately"
            )
    return first


def check_coarse_grid(
    checkpoint: DownscalingCheckpoint, coarse_lat: np.ndarray, coarse_lon: np.ndarray, where: str
) -> None:
    """The coarse input must have the grid spacing the model was trained on."""
    trained = max(
        grid_spacing(checkpoint.grids["coarse_lat"]), grid_spacing(checkpoint.grids["coarse_lon"])
    )
    given = max(grid_spacing(coarse_lat), grid_spacing(coarse_lon))
    if abs(given - trained) > 0.01 * trained:
        raise UserError(
            f"{where}: coarse grid spacing {given:g} deg, but the model was trained on "
            f"{trained:g} deg coarse input; regrid the input or train for it"
        )


def training_summary(checkpoint_dir: str | Path) -> dict:
    """What `downscale train` recorded about a run (wall time, step time, parameters)."""
    path = Path(checkpoint_dir)
    path = path.parent if path.name == "checkpoints" else path
    try:
        summary = json.loads((path / "summary.json").read_text())
    except (OSError, ValueError):
        return {}
    keys = (
        "command",
        "final_step",
        "start_step",
        "mode",
        "init",
        "wall_s",
        "seconds_per_step",
        "n_parameters",
        "n_trainable",
        "loss",
        "validation_loss",
        "train_samples",
    )
    return {k: summary[k] for k in keys if k in summary}


def check_block_grid(pair: RegionalPair, where: str) -> int:
    """The coarsening factor, when the coarse grid is the block means of exactly the region."""
    n_fine = (len(pair.fine_lat), len(pair.fine_lon))
    n_coarse = (pair.coarse.sizes["lat"], pair.coarse.sizes["lon"])
    factor = n_fine[0] // n_coarse[0]
    inside = all(
        np.min(c) > np.min(f) and np.max(c) < np.max(f)
        for c, f in (
            (pair.coarse["lat"].values, pair.fine_lat),
            (
                np.unwrap(pair.coarse["lon"].values, period=360.0),
                np.unwrap(pair.fine_lon, period=360.0),
            ),
        )
    )
    if factor < 2 or n_fine != (factor * n_coarse[0], factor * n_coarse[1]) or not inside:
        raise UserError(
            f"{where}: corner-aligned baselines need the coarse file to be the block "
            f"means of exactly the region ({n_fine[0]} x {n_fine[1]} fine cells); it "
            f"has {n_coarse[0]} x {n_coarse[1]} cells there. Make it with `stmodel "
            "downscale coarsen --region` of the same box"
        )
    return factor


def corner_aligned_mean_residual(
    pair: RegionalPair, period: SplitPeriod, bilinear: GridInterpolator
) -> tuple[np.ndarray, np.ndarray]:
    """Mean over `period` of fine truth minus the corner-aligned bilinear interpolation:
    upper [level, lat, lon, var], surface [lat, lon, var]."""
    reader = PairReader(pair, period, "bilinear")
    sums = [0.0, 0.0]
    n = len(reader)
    for start in range(0, n, RESIDUAL_CHUNK):
        batch = reader.read(np.arange(start, min(start + RESIDUAL_CHUNK, n)))
        for k, (fine, coarse) in enumerate(
            ((batch.fine_upper, batch.coarse_upper), (batch.fine_surface, batch.coarse_surface))
        ):
            sums[k] = sums[k] + (fine.astype(np.float64) - bilinear.channels_last(coarse)).sum(
                axis=0
            )
    return (np.asarray(sums[0] / n, np.float32), np.asarray(sums[1] / n, np.float32))


def evaluate_downscaling(
    checkpoints: Mapping[str, DownscalingCheckpoint],
    coarse_paths: Sequence[str | Path],
    fine_paths: Sequence[str | Path],
    period: SplitPeriod | None = None,
    *,
    batch_size: int = 16,
    progress: bool = True,
    summaries: Mapping[str, dict] | None = None,
    corner_aligned: bool = False,
    command: str | None = None,
) -> dict:
    """Scores of every model and baseline: {'rmse': {field: {name: value}}, 'bias': ...}.

    `summaries` (by model name) are the training runs' records, copied into the result;
    `corner_aligned` adds the baselines in scipy.ndimage.zoom's convention; `command`
    (the command line, from the CLI) is recorded."""
    if not checkpoints:
        raise UserError("no checkpoint to evaluate")
    first = _check_compatible(checkpoints)
    pair = open_pair(
        coarse_paths, fine_paths, first.box, layout=first.layout, halo=first.network_config.halo
    )
    check_coarse_grid(
        first,
        pair.coarse["lat"].values,
        pair.coarse["lon"].values,
        ", ".join(str(p) for p in coarse_paths),
    )
    if not np.allclose(pair.fine_lat, first.grids["fine_lat"]) or not np.allclose(
        pair.fine_lon, first.grids["fine_lon"]
    ):
        raise UserError(
            f"{', '.join(str(p) for p in fine_paths)}: its grid over the region "
            f"{first.box.text()} differs from the one the model was trained on"
        )
    if period is None:
        period = split_periods(pair.fine).get("test")
        if period is None:
            raise UserError(
                f"{', '.join(str(p) for p in fine_paths)}: no test_period attribute; "
                "give --period START/END"
            )
    reader = PairReader(pair, period, "bicubic")
    interpolators = {method: pair.interpolator(method) for method in METHODS}
    baselines = list(BASELINES)
    if corner_aligned:
        check_block_grid(pair, ", ".join(str(p) for p in coarse_paths))
        corner_interpolators = {
            method + CORNER_SUFFIX: GridInterpolator.between(
                pair.coarse["lat"].values,
                pair.coarse["lon"].values,
                pair.fine_lat,
                pair.fine_lon,
                method,
                alignment="corners",
            )
            for method in METHODS
        }
        corner_residual = corner_aligned_mean_residual(
            pair,
            SplitPeriod.parse(first.provenance["train_period"]),
            corner_interpolators["bilinear" + CORNER_SUFFIX],
        )
        interpolators.update(corner_interpolators)
        baselines += [name + CORNER_SUFFIX for name in BASELINES]
    # Each model's input: its interpolation to its own grid (region plus its halo).
    model_inputs = {
        name: GridInterpolator.between(
            pair.coarse["lat"].values,
            pair.coarse["lon"].values,
            c.grids["network_lat"],
            c.grids["network_lon"],
            c.config.interpolation,
        )
        for name, c in checkpoints.items()
    }
    lat_weights = area_weights(pair.fine["lat"]).values  # [lat]
    predictors = {name: jax.jit(checkpoint.fine_fields) for name, checkpoint in checkpoints.items()}
    static = {name: jnp.asarray(c.static) for name, c in checkpoints.items()}
    candidates = list(checkpoints) + baselines
    squared = {name: [] for name in candidates}  # per time: [channel]
    squared_unweighted = {name: [] for name in candidates}
    errors = {name: [] for name in candidates}
    n = len(reader)
    batches = range(0, n, batch_size)
    for start in tqdm(batches, desc="evaluating", unit="batch", disable=not progress):
        batch = reader.read(np.arange(start, min(start + batch_size, n)))
        truth = _channels(batch.fine_upper, batch.fine_surface)
        fields = {}
        for method, interpolate in interpolators.items():
            fields[method] = (
                interpolate.channels_last(batch.coarse_upper),
                interpolate.channels_last(batch.coarse_surface),
            )
        fields["bilinear_mean_residual"] = (
            fields["bilinear"][0] + first.mean_residual_upper,
            fields["bilinear"][1] + first.mean_residual_surface,
        )
        if corner_aligned:
            corner = fields["bilinear" + CORNER_SUFFIX]
            fields["bilinear_mean_residual" + CORNER_SUFFIX] = (
                corner[0] + corner_residual[0],
                corner[1] + corner_residual[1],
            )
        for name, checkpoint in checkpoints.items():
            interpolate = model_inputs[name]
            time = time_channels(
                batch.times, checkpoint.grids["network_lon"], len(checkpoint.grids["network_lat"])
            )
            fields[name] = tuple(
                np.asarray(x)
                for x in predictors[name](
                    checkpoint.params,
                    jnp.asarray(interpolate.channels_last(batch.coarse_upper)),
                    jnp.asarray(interpolate.channels_last(batch.coarse_surface)),
                    jnp.asarray(time),
                    static[name],
                )
            )
        for name in candidates:
            error = _channels(*fields[name]).astype(np.float64) - truth
            # error [time, lat, lon, channel] -> [time, channel]
            squared[name].append(area_weighted_mse(error, lat_weights, lat_axis=1))
            squared_unweighted[name].append((error**2).mean(axis=(1, 2)))
            errors[name].append(area_weighted_mean(error, lat_weights, lat_axis=1))
    channels = channel_names(first)
    rmse = {name: np.sqrt(np.concatenate(squared[name]).mean(axis=0)) for name in candidates}
    rmse_unweighted = {
        name: np.sqrt(np.concatenate(squared_unweighted[name]).mean(axis=0)) for name in candidates
    }
    bias = {name: np.concatenate(errors[name]).mean(axis=0) for name in candidates}
    conventions = {k: v for k, v in CONVENTIONS.items() if corner_aligned or k != "corner_aligned"}
    return {
        "command": command,
        "conventions": conventions,
        "region": first.box.text(),
        "period": f"{period.start}/{period.end}",
        "n_times": n,
        "fine_grid": [len(pair.fine_lat), len(pair.fine_lon)],
        "coarse_spacing_deg": grid_spacing(pair.coarse["lat"].values),
        "fine_spacing_deg": grid_spacing(pair.fine_lat),
        "models": {
            name: {
                "checkpoint_step": c.step,
                "mode": c.config.mode,
                "init": c.config.init,
                "steps": c.config.steps,
                "batch_size": c.config.batch_size,
                "learning_rate": c.config.optimizer.learning_rate,
                "pretrained": (c.provenance.get("pretrained") or {}).get("directory")
                if c.config.init == "pretrained"
                else None,
                "training": dict((summaries or {}).get(name, {})),
            }
            for name, c in checkpoints.items()
        },
        "rmse": {
            field: {name: float(rmse[name][i]) for name in candidates}
            for i, field in enumerate(channels)
        },
        "rmse_unweighted": {
            field: {name: float(rmse_unweighted[name][i]) for name in candidates}
            for i, field in enumerate(channels)
        },
        "bias": {
            field: {name: float(bias[name][i]) for name in candidates}
            for i, field in enumerate(channels)
        },
    }


def format_table(scores: dict, fields: Sequence[str] | None = None, score: str = "rmse") -> str:
    """RMSE (`score`: ``rmse`` or ``rmse_unweighted``) per field (rows) and candidate
    (columns), with each model's gain over bicubic."""
    rmse = scores[score]
    if fields is None:
        fields = [f for f in KEY_FIELDS if f in rmse] or list(rmse)[:8]
    names = list(next(iter(rmse.values())))
    models = [n for n in names if n in scores["models"]]
    header = ["field", *names, *(f"{m} vs bicubic" for m in models)]
    rows = [header]
    for field in fields:
        values = rmse[field]
        gains = [f"{100 * (1 - values[m] / values['bicubic']):+.1f}%" for m in models]
        rows.append([field, *(f"{values[n]:.4g}" for n in names), *gains])
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths)))
        for row in rows
    )


def write_scores(scores: dict, path: str | Path) -> Path:
    path = Path(path)
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(scores, indent=2) + "\n")
    return path
