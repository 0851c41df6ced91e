"""The stochastic one-step model: noise through conditional layer norms, exact warm start
from deterministic parameters, the new config fields, and the noise's checks."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from stmodel.checkpoints.global_model import CheckpointModel
from stmodel.model.config import ModelConfig
from stmodel.model.earth_transformer import EarthSpecificTransformer
from stmodel.model.noise import batch_noise
from stmodel.model.parameter_names import named_arrays, replace_by_name
from stmodel.training.config import load_config

# test_model.py's small network: three pressure tokens, shifted windows in every stage.
DETERMINISTIC = ModelConfig(
    grid=(16, 64),
    n_levels=3,
    n_upper_vars=2,
    n_surface_vars=2,
    n_constant_fields=1,
    dim=16,
    depths=(2, 2, 2, 2),
    heads=(2, 2, 2, 2),
    window=(2, 2, 4),
    drop_path=0.0,
)
GLOBAL = dataclasses.replace(DETERMINISTIC, noise_dim=8)
FIELD = dataclasses.replace(DETERMINISTIC, noise_dim=8, noise_kind="global+field")
ADDED = ("_noise.scale.value", "_noise.shift.value")


def fields(config: ModelConfig, batch: int = 2, seed: int = 0):
    rng = np.random.default_rng(seed)
    lat, lon = config.grid
    shapes = (
        (batch, config.n_levels, lat, lon, config.n_upper_vars),
        (batch, lat, lon, config.n_surface_vars),
        (lat, lon, config.n_constant_fields),
    )
    return tuple(jnp.asarray(rng.standard_normal(s), jnp.float32) for s in shapes)


def noise(config: ModelConfig, members, sample: int = 0, step: int = 0):
    members = np.asarray(members)
    return batch_noise(0, step, np.full_like(members, sample), members, 0, config.noise_input_dim)


class Network:
    """A config's network and its forward pass, jitted once."""

    def __init__(self, config: ModelConfig):
        self.model = EarthSpecificTransformer(config, rngs=nnx.Rngs(0))
        self.graphdef, self.params, self.rest = nnx.split(self.model, nnx.Param, ...)
        self._forward = jax.jit(
            lambda params, z, *f: nnx.merge(self.graphdef, params, self.rest)(*f, noise=z)
        )

    def __call__(self, params, z, *f):
        return [np.asarray(a) for a in self._forward(params, z, *f)]


@pytest.fixture(scope="module")
def networks():
    return {
        c.noise_kind if c.noise_dim else "none": Network(c) for c in (DETERMINISTIC, GLOBAL, FIELD)
    }


def test_parameter_names_are_kept_and_the_new_ones_sit_beside(networks):
    deterministic = named_arrays(networks["none"].params)
    for kind in ("global", "global+field"):
        stochastic = named_arrays(networks[kind].params)
        # Same names, same shapes, and (created last, or without RNG) the same initial values.
        for name, value in deterministic.items():
            np.testing.assert_array_equal(stochastic[name], value)
        added = sorted(set(stochastic) - set(deterministic))
        norms = [n for n in added if n.endswith(ADDED)]
        # Two per block (attention_norm, mlp_norm) and one per resampling norm, each two kernels.
        assert len(norms) == 2 * (2 * sum(DETERMINISTIC.depths) + 2)
        assert "backbone.encoder_fine.blocks.0.attention_norm_noise.scale.value" in norms
        assert "backbone.downsample.norm_noise.shift.value" in norms
        others = {n for n in added if not n.endswith(ADDED)}
        expected = {f"noise_embedding.fc{i}.{p}.value" for i in (1, 2) for p in ("kernel", "bias")}
        if kind == "global+field":
            expected |= {"noise_field.upper_scale.value", "noise_field.surface_scale.value"}
        assert others == expected
        zero = norms + [n for n in others if n.startswith("noise_field.")]
        assert all(not np.any(stochastic[n]) for n in zero)


@pytest.mark.parametrize("kind", ["global", "global+field"])
def test_deterministic_parameters_give_the_deterministic_output_for_any_noise(networks, kind):
    upper, surface, constants = fields(DETERMINISTIC)
    reference = networks["none"](networks["none"].params, None, upper, surface, constants)
    stochastic = networks[kind]
    # The deterministic parameters by name; the new ones at their zero (or random MLP) start.
    params = replace_by_name(
        stochastic.params, named_arrays(nnx.to_pure_dict(networks["none"].params))
    )
    for step in range(3):
        z = noise(stochastic.model.config, [0, 1], step=step) * 10.0
        out = stochastic(params, z, upper, surface, constants)
        for a, b in zip(out, reference):
            np.testing.assert_array_equal(a, b)


def perturbed(params, scale: float = 0.3):
    """The parameters with every noise-conditioning parameter random: a trained model."""
    names = named_arrays(params)
    rng = np.random.default_rng(5)
    values = {
        n: scale * rng.standard_normal(np.shape(v)).astype(np.float32)
        for n, v in names.items()
        if "_noise." in n or n.startswith("noise_field.")
    }
    return replace_by_name(params, values)


@pytest.mark.parametrize("kind", ["global", "global+field"])
def test_trained_noise_makes_members_differ_per_sample(networks, kind):
    network = networks[kind]
    config = network.model.config
    params = perturbed(network.params)
    upper, surface, constants = fields(config)
    z = noise(config, [0, 1])
    first = network(params, z, upper, surface, constants)
    again = network(params, z, upper, surface, constants)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)  # the noise is the only randomness
    # Another vector for sample 1 only: sample 0's output is untouched, sample 1's changes
    # everywhere (the global noise reaches every token, through the shifted windows too).
    z2 = z.at[1].set(noise(config, [2])[0])
    second = network(params, z2, upper, surface, constants)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a[0], b[0])
        changed = np.abs(a[1] - b[1]) > 1e-6
        assert changed.mean() > 0.9


def test_noise_is_checked(networks):
    upper, surface, constants = fields(DETERMINISTIC)
    with pytest.raises(ValueError, match="stochastic .*noise_dim = 8.*needs noise \\[batch, 8\\]"):
        networks["global"].model(upper, surface, constants)
    with pytest.raises(ValueError, match="noise given to a deterministic network"):
        networks["none"].model(upper, surface, constants, noise=jnp.zeros((2, 8)))
    with pytest.raises(ValueError, match="noise has shape \\(2, 8\\).*\\(2, 53\\)"):
        networks["global+field"].model(upper, surface, constants, noise=jnp.zeros((2, 8)))


def test_noise_conditioning_learns_from_zero_and_under_remat():
    # Smaller still: a gradient compiles the network twice over; remat covers its noise path.
    config = dataclasses.replace(
        GLOBAL, grid=(8, 32), dim=8, depths=(2, 1, 1, 1), heads=(1, 1, 1, 1), remat=True
    )
    model = EarthSpecificTransformer(config, rngs=nnx.Rngs(0))
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    upper, surface, constants = fields(config)
    z = noise(config, [0, 1])

    def loss(p):
        out_upper, out_surface = nnx.merge(graphdef, p, rest)(upper, surface, constants, noise=z)
        return jnp.mean(out_upper**2) + jnp.mean(out_surface**2)

    grads = named_arrays(jax.jit(jax.grad(loss))(params))
    # At zero modulation the kernels still get gradients, so training grows the noise's role.
    for name in (
        "backbone.encoder_fine.blocks.1.attention_norm_noise.scale.value",
        "backbone.decoder_fine.blocks.0.mlp_norm_noise.shift.value",
    ):
        assert np.isfinite(grads[name]).all() and np.abs(grads[name]).max() > 0


def test_config_fields_are_validated_defaulted_and_overridable():
    assert ModelConfig().noise_dim == 0 and ModelConfig().noise_kind == "global"
    with pytest.raises(ValueError, match="noise_dim"):
        ModelConfig(noise_dim=-1)
    with pytest.raises(ValueError, match="noise_kind"):
        ModelConfig(noise_dim=4, noise_kind="local")
    with pytest.raises(ValueError, match="noise_kind 'global\\+field' needs noise_dim > 0"):
        ModelConfig(noise_kind="global+field")
    # Saved with the checkpoint; old metadata without the fields reads as deterministic.
    assert ModelConfig.from_dict(FIELD.to_dict()) == FIELD
    old = {k: v for k, v in GLOBAL.to_dict().items() if not k.startswith("noise")}
    assert ModelConfig.from_dict(old) == DETERMINISTIC
    train = load_config(
        None, ["model_overrides.noise_dim=32", 'model_overrides.noise_kind="global+field"']
    )
    config = ModelConfig.preset("tiny", **dict(train.model_overrides))
    assert (config.noise_dim, config.noise_kind, config.noise_input_dim) == (32, "global+field", 77)
    with pytest.raises(Exception, match="model_overrides.noise_dim"):
        load_config(None, ["model_overrides.noise_dim=2.5"])


def test_warm_start_from_a_shipped_deterministic_model_copies_every_parameter():
    shipped = CheckpointModel.load("stmodel-small-6h")
    noisy = CheckpointModel.initialise(
        dataclasses.replace(shipped.model_config, noise_dim=32),
        shipped.layout,
        shipped.norm,
        shipped.constants,
        lat=shipped.lat,
        lon=shipped.lon,
        dt_hours=shipped.dt_hours,
        seed=1,
    )
    params = named_arrays(noisy.warm_start_from("stmodel-small-6h"))
    for name, value in named_arrays(shipped.params).items():
        np.testing.assert_array_equal(params[name], value)
    assert "network.backbone.encoder_fine.blocks.0.attention_norm_noise.scale.value" in params
    assert "network.backbone.encoder_fine.blocks.0.attention_norm.scale.value" in params
