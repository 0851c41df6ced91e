"""Normalisation and residual wrappers around the one-step network."""

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from stmodel.data.layout import NormalisationStats
from stmodel.model.config import ModelConfig
from stmodel.model.wrappers import NormalisedResidualModel, standardise_constants

CONFIG = ModelConfig(grid=(4, 8), n_levels=3, n_upper_vars=2, n_surface_vars=2, n_constant_fields=2)


class ConstantNetwork(nnx.Module):
    """Stands in for the network: returns a fixed normalised residual, records its inputs."""

    def __init__(self, config, residual_upper, residual_surface):
        self.config = config
        self.residual_upper = nnx.Variable(residual_upper)
        self.residual_surface = nnx.Variable(residual_surface)
        self.seen = nnx.data({})

    def __call__(self, upper, surface, constants, *, deterministic=True):
        self.seen.update(upper=upper, surface=surface, constants=constants)
        return (
            jnp.broadcast_to(self.residual_upper[...], upper.shape),
            jnp.broadcast_to(self.residual_surface[...], surface.shape),
        )


def make_stats(rng):
    return NormalisationStats(
        upper_mean=rng.normal(size=(3, 2)) * 100,
        upper_std=rng.uniform(1, 5, (3, 2)),
        upper_diff_std=rng.uniform(0.1, 1, (3, 2)),
        surface_mean=rng.normal(size=2) * 10,
        surface_std=rng.uniform(1, 3, 2),
        surface_diff_std=rng.uniform(0.1, 1, 2),
    )


def fields(rng, batch=2):
    return (
        jnp.asarray(rng.normal(size=(batch, 3, 4, 8, 2)) * 50 + 100, jnp.float32),
        jnp.asarray(rng.normal(size=(batch, 4, 8, 2)) * 5, jnp.float32),
        jnp.asarray(rng.normal(size=(4, 8, 2)) * 1000, jnp.float32),
    )


def test_zero_residual_is_persistence_and_inputs_are_standardised():
    rng = np.random.default_rng(0)
    stats = make_stats(rng)
    network = ConstantNetwork(CONFIG, jnp.zeros(()), jnp.zeros(()))
    model = NormalisedResidualModel(network, stats)
    upper, surface, constants = fields(rng)
    next_upper, next_surface = model(upper, surface, constants)
    np.testing.assert_allclose(next_upper, upper, rtol=1e-6)
    np.testing.assert_allclose(next_surface, surface, rtol=1e-6)
    seen_upper, seen_surface, seen_constants = (
        network.seen[k] for k in ("upper", "surface", "constants")
    )
    expected = (np.asarray(upper) - stats.upper_mean[:, None, None, :]) / stats.upper_std[
        :, None, None, :
    ]
    np.testing.assert_allclose(seen_upper, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(
        seen_surface,
        (np.asarray(surface) - stats.surface_mean) / stats.surface_std,
        rtol=1e-4,
        atol=1e-4,
    )
    np.testing.assert_allclose(np.asarray(seen_constants).mean(axis=(0, 1)), 0, atol=1e-5)
    np.testing.assert_allclose(np.asarray(seen_constants).std(axis=(0, 1)), 1, atol=1e-4)


def test_residual_targets_and_add_residual_are_inverse():
    rng = np.random.default_rng(1)
    model = NormalisedResidualModel(
        ConstantNetwork(CONFIG, jnp.zeros(()), jnp.zeros(())), make_stats(rng)
    )
    upper, surface, _ = fields(rng)
    next_upper, next_surface, _ = fields(rng)
    target_upper, target_surface = model.residual_targets(upper, surface, next_upper, next_surface)
    back = model.scaling.add_residual(upper, surface, target_upper, target_surface)
    back_upper, back_surface = back
    np.testing.assert_allclose(back_upper, next_upper, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(back_surface, next_surface, rtol=1e-5, atol=1e-5)


def test_network_output_is_read_as_normalised_residual():
    rng = np.random.default_rng(2)
    stats = make_stats(rng)
    model = NormalisedResidualModel(ConstantNetwork(CONFIG, jnp.ones(()), 2 * jnp.ones(())), stats)
    upper, surface, constants = fields(rng)
    next_upper, next_surface = model(upper, surface, constants)
    np.testing.assert_allclose(
        next_upper - upper,
        np.broadcast_to(stats.upper_diff_std[:, None, None, :], upper.shape),
        rtol=1e-3,
        atol=1e-4,
    )
    np.testing.assert_allclose(
        next_surface - surface,
        np.broadcast_to(2 * stats.surface_diff_std, surface.shape),
        rtol=1e-3,
        atol=1e-4,
    )


def test_bad_statistics_are_named():
    rng = np.random.default_rng(3)
    stats = make_stats(rng)
    network = ConstantNetwork(CONFIG, jnp.zeros(()), jnp.zeros(()))
    bad = stats.__class__(**{**stats.__dict__, "upper_diff_std": np.zeros((3, 2))})
    with pytest.raises(ValueError, match=r"upper_diff_std\[0, 0\]"):
        NormalisedResidualModel(network, bad)
    bad = stats.__class__(**{**stats.__dict__, "surface_mean": np.zeros(3)})
    with pytest.raises(ValueError, match=r"surface_mean has shape \(3,\), expected \(2,\)"):
        NormalisedResidualModel(network, bad)


def test_constant_field_without_variation_is_only_centred():
    constants = jnp.stack([jnp.zeros((4, 8)), jnp.arange(32.0).reshape(4, 8)], axis=-1)
    standardised = np.asarray(standardise_constants(constants))
    assert np.isfinite(standardised).all()
    np.testing.assert_array_equal(standardised[..., 0], 0)
