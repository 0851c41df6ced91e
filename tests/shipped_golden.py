"""A portable fingerprint of each shipped model's forecast, and the file that records it.

Two jitted forecast steps from a fixed random batch (and, for a stochastic model, a fixed
noise vector per state) give, per step and
channel (upper-air level and variable, then surface variable), the network's normalised
residual (next - current) / diff_std. The fingerprint keeps every residual's mean and std
over batch, latitude and longitude, and its value at 16 fixed grid points.

The reference is compared with tolerances, not bit for bit: XLA's CPU code differs
between processor kinds (vector width, fused multiply-add, reduction order), so two
machines agree to float32 rounding only. `python tests/shipped_golden.py` records the
fingerprints anew (after replacing a shipped model); `--check` compares with them.
"""

from __future__ import annotations

import sys
from pathlib import Path

import jax
import numpy as np
from flax import nnx

from stmodel.checkpoints.global_model import CheckpointModel
from stmodel.models import shipped_models

REFERENCE = Path(__file__).parent / "golden" / "shipped_forecasts.npz"
N_STEPS = 2
N_POINTS = 16


def random_state(model: CheckpointModel) -> tuple[np.ndarray, np.ndarray]:
    """A batch of 2 states drawn around the model's own climatology, seed 0."""
    norm, rng = model.norm, np.random.default_rng(0)
    n_lat, n_lon = model.model_config.grid
    shape = (2, len(model.layout.levels), n_lat, n_lon, len(model.layout.upper_air))
    upper = norm.upper_mean[:, None, None, :] + norm.upper_std[:, None, None, :] * (
        rng.standard_normal(shape)
    )  # [batch, level, lat, lon, var]
    surface = norm.surface_mean + norm.surface_std * rng.standard_normal(
        (2, n_lat, n_lon, len(model.layout.surface))
    )  # [batch, lat, lon, var]
    return upper.astype(np.float32), surface.astype(np.float32)


def fixed_noise(model: CheckpointModel) -> np.ndarray | None:
    """[batch, noise_input_dim] standard normal values, seed 2, for a stochastic model; None
    for a deterministic one."""
    width = model.model_config.noise_input_dim
    if not width:
        return None
    return np.random.default_rng(2).standard_normal((2, width)).astype(np.float32)


_STEPS: dict[int, tuple[CheckpointModel, object]] = {}


def _jitted_step(model: CheckpointModel):
    """(params, upper, surface) -> (normalised residuals, next state): the forecast step
    (NormalisedResidualModel.__call__), the residual kept before it is added to the float32
    state, whose rounding would hide small changes. Compiled once per model object."""
    if id(model) not in _STEPS:

        def step(params, upper, surface, noise):
            network = nnx.merge(model.graphdef, params, model.rest, copy=True)
            residual = network.predict_residual(upper, surface, model.constants, noise=noise)
            return residual, network.scaling.add_residual(upper, surface, *residual)

        _STEPS[id(model)] = (model, jax.jit(step))  # the model kept alive: ids stay unique
    return _STEPS[id(model)][1]


def residuals(model: CheckpointModel, params=None) -> np.ndarray:
    """[step, batch, lat, lon, channel] residuals of `N_STEPS` steps, float64; `params`
    default to the model's own."""
    params = model.params if params is None else params
    step, state, steps = _jitted_step(model), random_state(model), []
    for _ in range(N_STEPS):
        (d_upper, d_surface), state = step(params, *state, fixed_noise(model))
        batch, level, lat, lon, var = d_upper.shape
        d_upper = np.asarray(d_upper).transpose(0, 2, 3, 1, 4)  # [batch, lat, lon, level, var]
        d_upper = d_upper.reshape(batch, lat, lon, level * var)  # [batch, lat, lon, channel]
        steps.append(np.concatenate([d_upper, np.asarray(d_surface)], axis=-1))
    return np.stack(steps).astype(np.float64)


def fingerprint(model: CheckpointModel, params=None) -> dict[str, np.ndarray]:
    """mean and std [step, channel] of the residuals, and their values [step, point,
    channel] at N_POINTS fixed (batch, lat, lon) points."""
    fields = residuals(model, params)  # [step, batch, lat, lon, channel]
    flat = fields.reshape(N_STEPS, -1, fields.shape[-1])  # [step, point, channel]
    points = np.sort(np.random.default_rng(1).choice(flat.shape[1], N_POINTS, replace=False))
    return {"mean": flat.mean(axis=1), "std": flat.std(axis=1), "points": flat[:, points]}


# Two steps' float32 rounding, in units of diff_std: between XLA's AVX2, AVX and SSE4.2
# code on one machine (AMD Zen 3) the shipped models' residuals differed by at most
# POINTS_MEASURED at a point (the second step amplifying the first one's rounding) and
# MOMENTS_MEASURED in a channel's mean or std. The tolerances are ten times those.
POINTS_MEASURED, MOMENTS_MEASURED = 8.1e-6, 1.5e-7
TOLERANCE = {"points": 10 * POINTS_MEASURED, "mean": 10 * MOMENTS_MEASURED}
TOLERANCE["std"] = TOLERANCE["mean"]


def outside_rounding(actual: dict[str, np.ndarray], reference: dict[str, np.ndarray]) -> list[str]:
    """What of fingerprint `actual` lies outside TOLERANCE of `reference` (empty: all within)."""
    outside = []
    for key, limit in TOLERANCE.items():
        excess = np.abs(actual[key] - reference[key]) - limit
        if (excess > 0).any():
            outside.append(
                f"{key}: {int((excess > 0).sum())} values beyond {limit:.0e}, "
                f"the worst by {excess.max():.3g}"
            )
    return outside


def read_reference() -> dict[str, dict[str, np.ndarray]]:
    """{model name: its recorded fingerprint}."""
    with np.load(REFERENCE) as file:
        stored = dict(file)
    by_model: dict[str, dict[str, np.ndarray]] = {}
    for key, value in stored.items():
        name, item = key.split("/")
        by_model.setdefault(name, {})[item] = value
    return by_model


def write_reference() -> int:
    arrays = {}
    for name in (m.name for m in shipped_models()):
        for key, value in fingerprint(CheckpointModel.load(name)).items():
            arrays[f"{name}/{key}"] = value
    REFERENCE.parent.mkdir(exist_ok=True)
    temporary = REFERENCE.with_suffix(".tmp.npz")
    np.savez_compressed(temporary, **arrays)
    temporary.replace(REFERENCE)
    print(f"wrote {REFERENCE}", file=sys.stderr)
    return 0


def check_reference() -> int:
    """0 when every shipped model's fingerprint is within rounding of the recorded one."""
    failed = 0
    for name, reference in read_reference().items():
        for problem in outside_rounding(fingerprint(CheckpointModel.load(name)), reference):
            print(f"{name}: {problem}", file=sys.stderr)
            failed = 1
    return failed


if __name__ == "__main__":
    sys.exit(check_reference() if sys.argv[1:] == ["--check"] else write_reference())
