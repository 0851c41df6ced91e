"""The 3D Earth-Specific Transformer: shapes, symmetry, presets, determinism, precision."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from stmodel.benchmarks.flops import analytic_forward_flops
from stmodel.model.config import PRESETS, ModelConfig
from stmodel.model.earth_transformer import (
    EarthSpecificTransformer,
    abstract_model,
    count_parameters,
    drop_path_rates,
)

# Small enough to compile in seconds. Three pressure tokens (two upper-air, one surface) are
# padded to whole windows of two; 64 lon cells make 16 lon tokens (4 windows) in stages 1 and 4
# and 8 (2 windows) in stages 2 and 3.
SMALL = ModelConfig(
    grid=(16, 64),
    n_levels=3,
    n_upper_vars=2,
    n_surface_vars=2,
    n_constant_fields=1,
    dim=16,
    depths=(2, 2, 2, 2),
    heads=(2, 2, 2, 2),
    window=(2, 2, 4),
    drop_path=0.1,
)


def random_fields(config: ModelConfig, batch: int = 1, seed: int = 0):
    rng = np.random.default_rng(seed)
    lat, lon = config.grid
    upper = rng.standard_normal((batch, config.n_levels, lat, lon, config.n_upper_vars))
    surface = rng.standard_normal((batch, lat, lon, config.n_surface_vars))
    constants = rng.standard_normal((lat, lon, config.n_constant_fields))
    return tuple(jnp.asarray(a, jnp.float32) for a in (upper, surface, constants))


def jitted_forward(config: ModelConfig, *, deterministic: bool = True):
    """(model_of(seed), forward(model, *fields)): one compilation for every model of the config."""
    graphdef, _ = nnx.split(EarthSpecificTransformer(config, rngs=nnx.Rngs(0)))
    compiled = jax.jit(
        lambda state, *fields: nnx.merge(graphdef, state)(*fields, deterministic=deterministic)
    )

    def forward(model, *fields):
        return compiled(nnx.state(model), *fields)

    return forward


@pytest.fixture(scope="session")
def small_forward():
    return jitted_forward(SMALL)


@pytest.fixture(scope="session")
def small_model():
    return EarthSpecificTransformer(SMALL, rngs=nnx.Rngs(0))


@pytest.fixture(scope="session")
def small_fields():
    return random_fields(SMALL, batch=2)


def _check_shapes(forward, model, config):
    upper, surface, constants = random_fields(config)
    upper_out, surface_out = forward(model, upper, surface, constants)
    assert upper_out.shape == upper.shape and surface_out.shape == surface.shape
    assert upper_out.dtype == jnp.float32 and surface_out.dtype == jnp.float32
    assert np.isfinite(np.asarray(upper_out)).all() and np.isfinite(np.asarray(surface_out)).all()


def test_output_shape_small_grid(small_forward, small_model):
    _check_shapes(small_forward, small_model, SMALL)


@pytest.mark.parametrize(
    "overrides",
    [
        # Patch padding in level, lat and lon; window padding in every axis; pre-norm blocks.
        dict(grid=(13, 30), n_levels=5, post_norm=False),
        # Token grid (3, 3, 7) smaller than the windows; patch (1, 3, 3); no constant fields.
        dict(grid=(9, 20), n_levels=2, patch=(1, 3, 3), n_constant_fields=0, window=(2, 6, 12)),
    ],
)
def test_output_shapes_on_grids_that_need_padding(overrides):
    config = dataclasses.replace(SMALL, **overrides)
    _check_shapes(
        jitted_forward(config), EarthSpecificTransformer(config, rngs=nnx.Rngs(0)), config
    )


def test_longitude_equivariance_by_whole_windows(small_forward):
    model = EarthSpecificTransformer(SMALL, rngs=nnx.Rngs(1))
    forward = small_forward
    upper, surface, constants = random_fields(SMALL)
    upper_out, surface_out = forward(model, upper, surface, constants)

    def rolled_output(cells):
        return forward(
            model,
            jnp.roll(upper, cells, axis=3),
            jnp.roll(surface, cells, axis=2),
            jnp.roll(constants, cells, axis=1),
        )

    # One coarse window = 4 coarse tokens = 8 fine tokens = 32 grid cells.
    upper_rolled, surface_rolled = rolled_output(32)
    np.testing.assert_allclose(upper_rolled, jnp.roll(upper_out, 32, axis=3), atol=2e-5, rtol=1e-4)
    np.testing.assert_allclose(
        surface_rolled, jnp.roll(surface_out, 32, axis=2), atol=2e-5, rtol=1e-4
    )
    # A shift by one token is not a symmetry: window boundaries move relative to the data.
    upper_rolled, _ = rolled_output(4)
    assert np.abs(upper_rolled - jnp.roll(upper_out, 4, axis=3)).max() > 1e-3


def test_pangu_preset_parameter_count():
    """The paper's 0.25 deg network, built abstractly: about 64 M parameters, 40 M in the bias."""
    config = ModelConfig.preset("pangu")
    assert config.token_grid == (8, 181, 360) and config.coarse_token_grid == (8, 91, 180)
    counts = count_parameters(abstract_model(config))
    # Bias tables: 3312 rows = (2*12-1) * 6**2 * 2**2; window types 4 x 31 (lat 181 -> 186
    # tokens) in stages 1 and 4 (6 heads), 4 x 16 (lat 91 -> 96) in stages 2 and 3 (12 heads).
    assert counts["position_bias"] == 3312 * (4 * (4 * 31) * 6 + 12 * (4 * 16) * 12) == 40_379_904
    assert counts["total"] == 64_220_576
    # "About 8 TFLOP per forward pass at 0.25 deg" (FACTS.md): the matrix products alone.
    assert 7.5e12 < analytic_forward_flops(config) < 9e12


def test_base_preset_matches_reference_parameter_count():
    # PhysicsNeMo's PyTorch Pangu at 32 x 64, C = 192: 26.4 M parameters (FACTS.md).
    counts = count_parameters(abstract_model(ModelConfig.preset("base")))
    assert round(counts["total"] / 1e5) == 264


def test_presets_and_config_validation():
    for name in PRESETS:
        config = ModelConfig.preset(name)
        assert ModelConfig.from_dict(config.to_dict()) == config
    assert ModelConfig.preset("tiny", dtype="bfloat16").dtype == "bfloat16"
    with pytest.raises(ValueError, match="unknown model preset"):
        ModelConfig.preset("huge")
    with pytest.raises(ValueError, match="not divisible"):
        ModelConfig(dim=30, heads=(4, 4, 4, 4))
    with pytest.raises(ValueError, match="dtype"):
        ModelConfig(dtype="float16")
    with pytest.raises(ValueError, match="window"):
        ModelConfig(window=(2, 6))


def test_drop_path_rates_follow_the_paper():
    encoder_fine, encoder_coarse, decoder_coarse, decoder_fine = drop_path_rates(ModelConfig())
    assert encoder_fine[0] == 0.0 and encoder_coarse[-1] == pytest.approx(0.2)
    assert len(encoder_coarse) == len(decoder_coarse) == 6 and decoder_coarse == encoder_coarse
    assert decoder_fine == encoder_fine


def test_shape_errors_name_the_array(small_model, small_fields):
    upper, surface, constants = small_fields
    with pytest.raises(ValueError, match="upper has shape"):
        small_model(upper[:, :2], surface, constants)
    with pytest.raises(ValueError, match="constants has shape"):
        small_model(upper, surface, constants[..., :0])


def test_determinism_and_stochastic_depth(small_forward, small_model, small_fields):
    first = small_forward(small_model, *small_fields)
    again = small_forward(small_model, *small_fields)
    twin = small_forward(EarthSpecificTransformer(SMALL, rngs=nnx.Rngs(0)), *small_fields)
    for a, b, c in zip(first, again, twin):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    other = small_forward(EarthSpecificTransformer(SMALL, rngs=nnx.Rngs(1)), *small_fields)
    assert np.abs(first[0] - other[0]).max() > 1e-3
    # The samples of a batch do not interact in inference mode.
    upper, surface, constants = small_fields
    single = small_forward(small_model, upper[1:], surface[1:], constants)
    np.testing.assert_allclose(single[0], first[0][1:], rtol=1e-4, atol=1e-5)
    # Training mode drops residual branches at random (16 drop sites per sample, rates up to
    # 0.1, 8 samples): the RNG streams advance, so two calls differ.
    graphdef, state = nnx.split(EarthSpecificTransformer(SMALL, rngs=nnx.Rngs(params=0, dropout=5)))

    @jax.jit
    def train_forward(state, *fields):
        model = nnx.merge(graphdef, state)
        return model(*fields, deterministic=False), nnx.state(model)

    fields = random_fields(SMALL, batch=8)
    train_a, state = train_forward(state, *fields)
    train_b, state = train_forward(state, *fields)
    assert np.abs(train_a[0] - train_b[0]).max() > 1e-4


def _loss_and_grads(config: ModelConfig, fields):
    """Outputs, loss and parameter gradients, as nnx.value_and_grad computes them in training."""
    graphdef, state = nnx.split(EarthSpecificTransformer(config, rngs=nnx.Rngs(0)))

    @jax.jit
    def loss_and_grads(state):
        model = nnx.merge(graphdef, state)

        def loss(model):
            upper, surface = model(*fields)
            return jnp.abs(upper).mean() + 0.25 * jnp.abs(surface).mean(), (upper, surface)

        return nnx.value_and_grad(loss, has_aux=True)(model)

    (loss, outputs), grads = loss_and_grads(state)
    return nnx.state(nnx.merge(graphdef, state), nnx.Param), loss, outputs, grads


def test_bfloat16_forward_and_gradient_are_finite_with_float32_params(small_forward, small_fields):
    config = dataclasses.replace(SMALL, dtype="bfloat16", remat=True)
    params, loss, (out16, _), grads = _loss_and_grads(config, small_fields)
    leaves = jax.tree.leaves(params)
    assert all(leaf.dtype == jnp.float32 for leaf in leaves)
    grad_leaves = jax.tree.leaves(grads)
    assert all(g.dtype == jnp.float32 for g in grad_leaves)
    assert np.isfinite(float(loss))
    assert all(np.isfinite(np.asarray(g)).all() for g in grad_leaves)
    assert sum(float(jnp.abs(g).sum()) for g in grad_leaves) > 0
    # Forward outputs are float32 and close to the float32 network's.
    out32 = small_forward(EarthSpecificTransformer(SMALL, rngs=nnx.Rngs(0)), *small_fields)[0]
    assert out16.dtype == jnp.float32
    assert np.abs(out16 - out32).max() < 0.1 * np.abs(out32).max()
