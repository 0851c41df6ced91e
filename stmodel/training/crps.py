"""The continuous ranked probability score of an ensemble: the training loss of a
stochastic model (ModelConfig.noise_dim > 0) and the score that evaluates it.

One definition for both (NeuralGCM's principle, Kochkov et al. 2024): :func:`crps` is
written with array operations that numpy and jax share, so evaluation scores exactly
what training minimised.

For M members x_1..x_M and the truth y at one point, the almost fair CRPS of Lang et
al. 2024 (AIFS-CRPS, eq. 4; anemoi's default alpha = 0.95) is

    afCRPS_alpha = 1/M sum_i |x_i - y| - (1 - (1 - alpha)/M) / (2 M (M - 1)) sum_{i,j} |x_i - x_j|

alpha = 1 is the fair CRPS (Ferro 2014; Zamo & Naveau 2018), unbiased for the CRPS of
the distribution the members are drawn from, whatever M; alpha < 1 mixes in the
ensemble CRPS (coefficient 1/(2 M^2)), which cannot be lowered by members that move
apart together (the fair score's degenerate direction at small M).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from stmodel.training.loss import weighted_mean

DEFAULT_ALPHA = 0.95  # anemoi's (AIFS-ENS's) almost fair CRPS
# Up to this many members the spread term sums the pairs directly (M (M - 1) / 2 fields);
# beyond it, from the sorted members.
PAIRWISE_MEMBERS = 8


def _namespace(*arrays):
    """jax.numpy if any array is a jax array (traced ones too), else numpy."""
    return jnp if any(isinstance(a, jax.Array) for a in arrays) else np


def crps(ensemble, truth, *, member_axis: int, alpha: float = 1.0):
    """Per-point almost fair CRPS (alpha = 1: fair) of `ensemble` against `truth`.

    ensemble: M >= 2 members along member_axis; truth: ensemble's shape without that
    axis. Returns truth's shape; numpy in, numpy out; jax in, jax out (differentiable).

    The spread term sums the pairs for jax arrays and up to PAIRWISE_MEMBERS members
    (one accumulated field, no M^2 copies); for more members in numpy it uses the sorted
    members: sum_{i,j} |x_i - x_j| = 2 sum_k (2k - M - 1) x_(k), k = 1..M.
    """
    xp = _namespace(ensemble, truth)
    ensemble = xp.moveaxis(xp.asarray(ensemble), member_axis, 0)  # [member, ...]
    truth = xp.asarray(truth)
    n_members = ensemble.shape[0]
    if n_members < 2:
        raise ValueError(
            f"the fair CRPS needs at least 2 ensemble members, got {n_members} "
            f"(along axis {member_axis} of an ensemble of shape {ensemble.shape})"
        )
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1] (1: fair CRPS), got {alpha}")
    if ensemble.shape[1:] != truth.shape:
        raise ValueError(
            f"truth has shape {truth.shape}, expected the ensemble's {ensemble.shape[1:]} "
            f"without its member axis {member_axis}"
        )
    skill = xp.abs(ensemble - truth[None]).mean(axis=0)
    if xp is jnp or n_members <= PAIRWISE_MEMBERS:
        # Training's few members: the pairs one by one, elementwise. (XLA:CPU's sort along
        # the member axis of a large field crashed jitted, in jax 0.10.2.)
        pair_sum = 0.0
        for i in range(n_members):
            for j in range(i + 1, n_members):
                pair_sum = pair_sum + xp.abs(ensemble[i] - ensemble[j])
        pair_sum = 2.0 * pair_sum  # sum_{i,j} |x_i - x_j|, each pair both ways
    else:
        ranks = 2.0 * np.arange(1, n_members + 1) - n_members - 1  # 2k - M - 1
        ranks = ranks.reshape((n_members,) + (1,) * truth.ndim).astype(np.float32)
        pair_sum = 2.0 * (ranks * xp.sort(ensemble, axis=0)).sum(axis=0)
    coefficient = (1.0 - (1.0 - alpha) / n_members) / (2.0 * n_members * (n_members - 1))
    return skill - coefficient * pair_sum


def ensemble_crps_loss(
    pred_upper: jnp.ndarray,
    pred_surface: jnp.ndarray,
    target_upper: jnp.ndarray,
    target_surface: jnp.ndarray,
    *,
    member_axis: int,
    alpha: float = DEFAULT_ALPHA,
    upper_scale: jnp.ndarray,
    surface_scale: jnp.ndarray,
    lat_weights: jnp.ndarray,
    upper_weights: jnp.ndarray,
    surface_weights: jnp.ndarray,
    surface_weight: float,
) -> jnp.ndarray:
    """Scalar area- and channel-weighted afCRPS in the normalised-residual space, weighted
    exactly as the deterministic loss (stmodel.training.loss.weighted_error).

    pred_upper [..., level, lat, lon, var] and pred_surface [..., lat, lon, var] hold the
    members along member_axis, one of the leading axes "...", the same in both (e.g. 1
    for [batch, member, ...]; a negative one counts back from the last leading axis, so
    -1 is the one just before the field's axes); targets are the same without it. Predictions
    and targets may be physical states: the CRPS does not change when both shift by the
    same base state and scales as they do, so dividing both by the residual scales
    (upper_scale [level, var], surface_scale [var]) scores the normalised residuals.
    """
    upper_axis = _leading_axis(member_axis, pred_upper, n_field_axes=4)
    surface_axis = _leading_axis(member_axis, pred_surface, n_field_axes=3)
    upper = crps(
        pred_upper / upper_scale[:, None, None, :],
        target_upper / upper_scale[:, None, None, :],
        member_axis=upper_axis,
        alpha=alpha,
    )  # [..., level, lat, lon, var]
    surface = crps(
        pred_surface / surface_scale,
        target_surface / surface_scale,
        member_axis=surface_axis,
        alpha=alpha,
    )  # [..., lat, lon, var]
    return weighted_mean(
        upper, surface, lat_weights, upper_weights, surface_weights, surface_weight
    )


def _leading_axis(member_axis: int, array, n_field_axes: int) -> int:
    """member_axis as a non-negative axis of `array`, checked to be a leading (not a
    field) axis."""
    n_leading = array.ndim - n_field_axes
    axis = member_axis + n_leading if member_axis < 0 else member_axis
    if not 0 <= axis < n_leading:
        raise ValueError(
            f"member_axis {member_axis} is not one of the {n_leading} leading axes of a "
            f"prediction of shape {array.shape} (the last {n_field_axes} are the field's)"
        )
    return axis
