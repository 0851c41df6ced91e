"""The continuous ranked probability score of an ensemble, per point: the one definition
that training minimises and evaluation reports (NeuralGCM's principle, Kochkov et al. 2024).

For M members x_1..x_M and the truth y at one point, the almost fair CRPS of Lang et
al. 2024 (AIFS-CRPS, eq. 4) is

    afCRPS_alpha = 1/M sum_i |x_i - y| - (1 - (1 - alpha)/M) / (2 M (M - 1)) sum_{i,j} |x_i - x_j|

* alpha = 1: the fair CRPS (Ferro 2014; Zamo & Naveau 2018; WeatherBench 2's ``CRPS``),
  unbiased for the CRPS of the distribution the members are drawn from, whatever M;
* alpha = 0: the CRPS of the members' empirical CDF, coefficient 1/(2 M^2) (Gneiting and
  Raftery 2007; ``properscoring``, ``xskillscore.crps_ensemble``);
* in between (training's default 0.95, anemoi's): a mix that cannot be lowered by members
  that move apart together (the fair score's degenerate direction at small M).

One member has no spread term (the formula's 0/0 is taken as 0): its CRPS is its absolute
error, so a deterministic forecast scores its MAE.

Written with the array operations numpy and jax share: numpy in, numpy out; jax in (traced
too), jax out and differentiable. This module does not import jax: an array can only be a
jax array once jax is loaded.
"""

from __future__ import annotations

import sys

import numpy as np

# Up to this many members (and always for jax arrays) the spread term sums the pairs
# directly, M (M - 1) / 2 fields accumulated into one; beyond it, from the sorted members.
# (XLA:CPU's jitted sort along the member axis of a large field crashed, jax 0.10.2.)
PAIRWISE_MEMBERS = 8


def _namespace(*arrays):
    """jax.numpy if any array is a jax array (traced ones too), else numpy."""
    jax = sys.modules.get("jax")
    if jax is not None and any(isinstance(array, jax.Array) for array in arrays):
        import jax.numpy as jnp

        return jnp
    return np


def pairwise_abs_sum(ensemble, *, member_axis: int = 0):
    """sum_{i,j} |x_i - x_j| over the members along ``member_axis``, each pair both ways.

    Pairs one by one for jax arrays and up to :data:`PAIRWISE_MEMBERS` members (elementwise,
    one accumulated field); else from the sorted members in O(M log M): with x_(k) the k-th
    smallest, k = 1..M, x_(k) is the larger of a pair with the k - 1 below it and the
    smaller with the M - k above, so sum_{i,j} |x_i - x_j| = 2 sum_k (2k - M - 1) x_(k).
    """
    xp = _namespace(ensemble)
    ensemble = xp.moveaxis(xp.asarray(ensemble), member_axis, 0)  # [member, ...]
    n_members = ensemble.shape[0]
    if xp is not np or n_members <= PAIRWISE_MEMBERS:
        pair_sum = xp.zeros_like(ensemble[0])
        for i in range(n_members):
            for j in range(i + 1, n_members):
                pair_sum = pair_sum + xp.abs(ensemble[i] - ensemble[j])
        return 2.0 * pair_sum
    ranks = 2.0 * np.arange(1, n_members + 1) - n_members - 1  # 2k - M - 1, [member]
    ranks = ranks.reshape((n_members,) + (1,) * (ensemble.ndim - 1))  # [member, 1, ...]
    ranks = ranks.astype(np.result_type(ensemble.dtype, np.float32))  # keep float32 float32
    return 2.0 * (ranks * np.sort(ensemble, axis=0)).sum(axis=0)


def spread_coefficient(n_members: int, alpha: float = 1.0) -> float:
    """c in CRPS = mean_i |x_i - y| - c sum_{i,j} |x_i - x_j|: (1 - (1 - alpha)/M) /
    (2 M (M - 1)); 0 for one member (no pairs)."""
    if n_members < 2:
        return 0.0
    return (1.0 - (1.0 - alpha) / n_members) / (2.0 * n_members * (n_members - 1))


def crps(ensemble, truth, *, member_axis: int, alpha: float = 1.0):
    """Per-point almost fair CRPS (alpha = 1: fair; 0: empirical CDF) of ``ensemble``
    against ``truth``; the formula is in the module docstring.

    ensemble: M >= 1 members along member_axis; truth: ensemble's shape without that axis.
    Returns truth's shape.
    """
    xp = _namespace(ensemble, truth)
    ensemble = xp.moveaxis(xp.asarray(ensemble), member_axis, 0)  # [member, ...]
    truth = xp.asarray(truth)
    n_members = ensemble.shape[0]
    if n_members < 1:
        raise ValueError(f"no ensemble members along axis {member_axis}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1] (1: fair CRPS, 0: ECDF CRPS), got {alpha}")
    if ensemble.shape[1:] != truth.shape:
        raise ValueError(
            f"truth has shape {truth.shape}, expected the ensemble's {ensemble.shape[1:]} "
            f"without its member axis {member_axis}"
        )
    skill = xp.abs(ensemble - truth[None]).mean(axis=0)
    if n_members == 1:
        return skill
    return skill - spread_coefficient(n_members, alpha) * pairwise_abs_sum(ensemble)
