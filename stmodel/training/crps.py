"""The ensemble CRPS as the training loss of a stochastic model (ModelConfig.noise_dim > 0).

The per-point score is :func:`stmodel.evaluation.crps.crps`, the one definition that
evaluation reports too (NeuralGCM's principle, Kochkov et al. 2024): the almost fair CRPS
of Lang et al. 2024 (AIFS-CRPS, eq. 4), here with anemoi's default alpha = 0.95, summed
pair by pair for jax arrays (XLA:CPU's jitted sort along the member axis crashed). This
module weights it as the deterministic loss is weighted.
"""

from __future__ import annotations

import jax.numpy as jnp

from stmodel.evaluation import crps as crps_kernel
from stmodel.training.loss import weighted_mean

DEFAULT_ALPHA = 0.95  # anemoi's (AIFS-ENS's) almost fair CRPS


def crps(ensemble, truth, *, member_axis: int, alpha: float = 1.0):
    """:func:`stmodel.evaluation.crps.crps` of at least two members: one member has no
    spread to learn from (its CRPS is its MAE), so a one-member training ensemble is a
    mistake, refused here."""
    n_members = ensemble.shape[member_axis]
    if n_members < 2:
        raise ValueError(
            f"the fair CRPS needs at least 2 ensemble members, got {n_members} "
            f"(along axis {member_axis} of an ensemble of shape {ensemble.shape})"
        )
    return crps_kernel.crps(ensemble, truth, member_axis=member_axis, alpha=alpha)


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
