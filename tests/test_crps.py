"""The ensemble CRPS: its kernel against the pairwise definition, its weighting against
the deterministic loss's, finite gradients, and that it rewards calibrated members."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from stmodel.training.crps import crps, ensemble_crps_loss
from stmodel.training.loss import weighted_error


def pairwise_crps(ensemble: np.ndarray, truth: np.ndarray, alpha: float) -> np.ndarray:
    """The O(M^2) definition, members on axis 0 (Lang et al. 2024, eq. 4)."""
    m = ensemble.shape[0]
    skill = np.mean([np.abs(x - truth) for x in ensemble], axis=0)
    spread = sum(np.abs(ensemble[i] - ensemble[j]) for i in range(m) for j in range(m))
    return skill - (1 - (1 - alpha) / m) / (2 * m * (m - 1)) * spread


@pytest.mark.parametrize("members", [2, 3, 4])
@pytest.mark.parametrize("alpha", [1.0, 0.95, 0.0])
def test_kernel_matches_the_pairwise_definition_in_numpy_and_jax(members, alpha):
    rng = np.random.default_rng(members)
    ensemble = rng.standard_normal((members, 5, 7))
    truth = rng.standard_normal((5, 7))
    expected = pairwise_crps(ensemble, truth, alpha)
    got = crps(ensemble, truth, member_axis=0, alpha=alpha)
    assert isinstance(got, np.ndarray)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    # Members on another axis, and jax arrays (float32) give the same.
    moved = np.moveaxis(ensemble, 0, 2)
    np.testing.assert_allclose(crps(moved, truth, member_axis=2, alpha=alpha), expected)
    got_jax = jax.jit(lambda e, t: crps(e, t, member_axis=-1, alpha=alpha))(
        jnp.asarray(moved, jnp.float32), jnp.asarray(truth, jnp.float32)
    )
    assert isinstance(got_jax, jax.Array)
    np.testing.assert_allclose(np.asarray(got_jax), expected, rtol=1e-5, atol=1e-5)


def test_almost_fair_crps_mixes_fair_and_ensemble_crps():
    rng = np.random.default_rng(0)
    ensemble, truth, m = rng.standard_normal((3, 10)), rng.standard_normal(10), 3
    fair = crps(ensemble, truth, member_axis=0, alpha=1.0)
    spread = sum(np.abs(a - b) for a in ensemble for b in ensemble)
    ensemble_crps = np.abs(ensemble - truth).mean(axis=0) - spread / (2 * m * m)
    np.testing.assert_allclose(
        crps(ensemble, truth, member_axis=0, alpha=0.95), 0.95 * fair + 0.05 * ensemble_crps
    )


def test_one_member_and_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="at least 2 ensemble members"):
        crps(np.zeros((1, 4)), np.zeros(4), member_axis=0)
    with pytest.raises(ValueError, match="alpha"):
        crps(np.zeros((2, 4)), np.zeros(4), member_axis=0, alpha=1.5)
    with pytest.raises(ValueError, match="truth has shape"):
        crps(np.zeros((2, 4)), np.zeros(5), member_axis=0)


def _loss_arrays(rng, n_levels=3, n_lat=4, n_lon=6, n_upper=2, n_surface=2):
    return dict(
        upper_scale=jnp.asarray(rng.uniform(0.5, 2.0, (n_levels, n_upper)), jnp.float32),
        surface_scale=jnp.asarray(rng.uniform(0.5, 2.0, n_surface), jnp.float32),
        lat_weights=jnp.asarray(rng.uniform(0.2, 1.8, n_lat), jnp.float32),
        upper_weights=jnp.asarray(rng.uniform(0.5, 1.5, (n_levels, n_upper)), jnp.float32),
        surface_weights=jnp.asarray(rng.uniform(0.5, 1.5, n_surface), jnp.float32),
        surface_weight=0.25,
    )


def _fields(rng, leading, n_levels=3, n_lat=4, n_lon=6, n_upper=2, n_surface=2):
    upper = rng.standard_normal((*leading, n_levels, n_lat, n_lon, n_upper))
    surface = rng.standard_normal((*leading, n_lat, n_lon, n_surface))
    return jnp.asarray(upper, jnp.float32), jnp.asarray(surface, jnp.float32)


def test_loss_is_weighted_as_the_deterministic_loss():
    rng = np.random.default_rng(1)
    arrays = _loss_arrays(rng)
    pred_upper, pred_surface = _fields(rng, (2, 3))  # [batch, member, ...]
    target_upper, target_surface = _fields(rng, (2,))
    base_upper, base_surface = _fields(rng, (2,))
    loss = ensemble_crps_loss(
        pred_upper, pred_surface, target_upper, target_surface, member_axis=1, **arrays
    )
    # Direct: the per-point score in normalised-residual space, weighted by hand.
    a = {k: np.asarray(v, np.float64) for k, v in arrays.items()}
    scale_u, scale_s = a["upper_scale"][:, None, None, :], a["surface_scale"]
    score_u = pairwise_crps(
        np.moveaxis((np.asarray(pred_upper) - np.asarray(base_upper)[:, None]) / scale_u, 1, 0),
        (np.asarray(target_upper) - np.asarray(base_upper)) / scale_u,
        0.95,
    )
    score_s = pairwise_crps(
        np.moveaxis((np.asarray(pred_surface) - np.asarray(base_surface)[:, None]) / scale_s, 1, 0),
        (np.asarray(target_surface) - np.asarray(base_surface)) / scale_s,
        0.95,
    )
    lat = a["lat_weights"]
    expected = np.mean(score_u * lat[:, None, None] * a["upper_weights"][:, None, None, :])
    expected += 0.25 * np.mean(score_s * lat[:, None, None] * a["surface_weights"])
    np.testing.assert_allclose(float(loss), expected, rtol=2e-5)
    # Two identical members score the weighted MAE of the deterministic loss.
    twin_upper = jnp.stack([target_upper + 0.3, target_upper + 0.3], axis=1)
    twin_surface = jnp.stack([target_surface - 0.2, target_surface - 0.2], axis=1)
    np.testing.assert_allclose(
        float(
            ensemble_crps_loss(
                twin_upper, twin_surface, target_upper, target_surface, member_axis=1, **arrays
            )
        ),
        float(
            weighted_error(
                twin_upper[:, 0] - target_upper, twin_surface[:, 0] - target_surface, **arrays
            )
        ),
        rtol=1e-6,
    )
    with pytest.raises(ValueError, match="member_axis 4"):
        ensemble_crps_loss(
            pred_upper, pred_surface, target_upper, target_surface, member_axis=4, **arrays
        )


def test_gradients_are_finite_even_for_tied_members():
    rng = np.random.default_rng(2)
    arrays = _loss_arrays(rng)
    target_upper, target_surface = _fields(rng, (1,))
    spread = _fields(rng, (1, 3))
    collapsed = (  # every member equal to the truth: ties everywhere
        jnp.repeat(target_upper[:, None], 3, axis=1),
        jnp.repeat(target_surface[:, None], 3, axis=1),
    )
    loss = jax.jit(
        jax.grad(
            lambda pred: ensemble_crps_loss(
                *pred, target_upper, target_surface, member_axis=1, **arrays
            )
        )
    )
    for pred in (spread, collapsed):
        grads = loss(pred)
        assert all(np.isfinite(np.asarray(g)).all() for g in grads)
    assert any(np.abs(np.asarray(g)).max() > 0 for g in loss(spread))


def test_members_from_the_truths_distribution_score_below_a_collapsed_ensemble():
    rng = np.random.default_rng(3)
    n = 200_000
    truth = rng.standard_normal(n)
    for members in (2, 4):
        calibrated = rng.standard_normal((members, n))
        collapsed = np.repeat(rng.standard_normal((1, n)), members, axis=0)
        at_the_mean = np.zeros((members, n))
        score = crps(calibrated, truth, member_axis=0).mean()
        # The fair CRPS is unbiased: E = CRPS(N(0, 1), y) averaged over y ~ N(0, 1) = 1/sqrt(pi).
        assert abs(score - 1 / np.sqrt(np.pi)) < 0.01
        assert score < crps(collapsed, truth, member_axis=0).mean() - 0.3
        assert score < crps(at_the_mean, truth, member_axis=0).mean() - 0.1
