"""The downscaling network: zero-initialised head, LoRA adapters, frozen parameters, and
the transfer of pretrained weights (position-bias window types by latitude)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from stmodel.data.layout import VariableLayout
from stmodel.downscaling.adapters import LoRALinear, add_adapters
from stmodel.downscaling.checkpoint import frozen_parameter_names
from stmodel.downscaling.inputs import time_channels
from stmodel.downscaling.network import (
    DownscaleNetworkConfig,
    DownscaleStats,
    DownscalingModel,
    DownscalingNetwork,
)
from stmodel.downscaling.transfer import (
    _bias_type_map,
    token_latitudes,
    transfer_pretrained,
    window_centre_latitudes,
)
from stmodel.model.config import ModelConfig
from stmodel.model.earth_transformer import EarthSpecificTransformer
from stmodel.model.parameter_names import parameter_names
from stmodel.model.window_geometry import WindowGeometry

BACKBONE = ModelConfig.preset(
    "tiny",
    dim=8,
    heads=(1, 2, 2, 1),
    window=(2, 2, 8),
    grid=(16, 32),
    n_levels=4,
    n_upper_vars=2,
    n_surface_vars=1,
    n_constant_fields=4,
)


def _config(**overrides) -> DownscaleNetworkConfig:
    layout = VariableLayout(
        upper_air=("temperature", "u_component_of_wind"),
        levels=(50, 500, 850, 1000),
        surface=("surface_pressure",),
        constants=("sin_lat", "cos_lat", "sin_lon", "cos_lon"),
    )
    config = DownscaleNetworkConfig.from_backbone(BACKBONE, layout, (8, 16))
    return DownscaleNetworkConfig.from_dict({**config.to_dict(), **overrides})


def test_surface_only_network_starts_at_the_interpolated_field():
    """ERA5 2 m temperature alone: no upper-air tokens; the zero head returns the input."""
    config = _config(n_levels=0, n_upper_vars=0, n_surface_vars=1)
    assert config.token_grid == (1, 2, 4)
    model = DownscalingModel(
        DownscalingNetwork(config, rngs=nnx.Rngs(0)),
        DownscaleStats(
            *(np.ones(s, np.float32) for s in ((0, 0), (0, 0), (1,), (1,), (0, 0), (1,)))
        ),
    )
    rng = np.random.default_rng(0)
    surface = 280 + rng.standard_normal((2, 8, 16, 1)).astype(np.float32)
    upper = np.zeros((2, 0, 8, 16, 0), np.float32)
    times = np.array(["2019-03-01T00", "2019-03-01T12"], "datetime64[ns]")
    time = time_channels(times, np.linspace(-10, 2, 16), 8)
    static = rng.standard_normal((8, 16, 4)).astype(np.float32)
    fine_upper, fine_surface = nnx.jit(lambda m, *a: m(*a))(model, upper, surface, time, static)
    assert fine_upper.shape == (2, 0, 8, 16, 0)
    np.testing.assert_allclose(fine_surface, surface, rtol=1e-6)


def test_time_channels_follow_local_solar_time():
    times = np.array(["2019-03-01T00", "2019-06-01T12"], "datetime64[ns]")
    channels = time_channels(times, np.array([0.0, 90.0, -90.0]), n_lat=2)
    assert channels.shape == (2, 2, 3, 4)
    # 00 UTC at 90 E is 06 local: a quarter of the day.
    np.testing.assert_allclose(channels[0, 0, 1, :2], [1.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(channels[1, 0, 0, :2], [0.0, -1.0], atol=1e-6)  # noon
    np.testing.assert_allclose(channels[0, 0, 2, :2], [-1.0, 0.0], atol=1e-6)  # 18 local
    assert np.all(channels[..., 2:] == channels[:, :1, :1, 2:])  # the season is one value


def test_lora_adapters_start_as_the_identity_and_freeze_the_rest():
    config = _config()
    network = DownscalingNetwork(config, rngs=nnx.Rngs(0))
    upper = jnp.ones((1, 4, 8, 16, 2))
    surface = jnp.ones((1, 8, 16, 1 + 4))
    static = jnp.ones((8, 16, 4))
    # Give the head weights so that the output depends on the backbone.
    head = network.head
    head.upper.kernel[...] = 0.01 * jnp.ones_like(head.upper.kernel[...])
    forward = nnx.jit(lambda n, *a: n(*a))
    before = forward(network, upper, surface, static)
    count = add_adapters(
        [
            network.backbone.encoder_fine,
            network.backbone.encoder_coarse,
            network.backbone.decoder_coarse,
            network.backbone.decoder_fine,
        ],
        rank=2,
        alpha=4.0,
        rngs=nnx.Rngs(1),
    )
    assert count == 4 * sum(config.depths)
    assert isinstance(network.backbone.encoder_fine.blocks[0].attention.qkv, LoRALinear)
    after = forward(network, upper, surface, static)
    np.testing.assert_allclose(after[0], before[0], rtol=1e-6, atol=1e-7)

    model = DownscalingModel(network, DownscaleStats.placeholder(config))
    params = nnx.state(model, nnx.Param)
    frozen = set(frozen_parameter_names(params, "lora"))
    names = parameter_names(params)
    assert any(".lora_a" in n for n in names)
    assert not any(".lora_" in n or "position_bias" in n for n in frozen)
    assert "network.backbone.encoder_fine.blocks.0.attention.qkv.base.kernel.value" in frozen
    assert not any(n.startswith(("network.head", "network.patch_embedding")) for n in frozen)
    frozen_mode = set(frozen_parameter_names(params, "frozen"))
    assert "network.backbone.downsample.linear.kernel.value" in frozen_mode
    assert frozen_parameter_names(params, "full") == ()


def test_region_windows_take_the_bias_of_the_nearest_global_latitudes():
    """Globe 16 x 32 (tokens 4 x 8 at patch 4, windows of 4 latitudes: one window type per
    pressure window) vs a northern region; then a globe with two latitude windows."""
    global_lat = np.linspace(-84.375, 84.375, 16)
    fine = token_latitudes(global_lat, 4, coarse=False)
    np.testing.assert_allclose(fine, [-67.5, -22.5, 22.5, 67.5])
    globe = WindowGeometry((3, 8, 8), (2, 2, 8), shifted=False)  # 4 lat windows of 2 tokens
    np.testing.assert_allclose(
        window_centre_latitudes(
            globe, token_latitudes(np.linspace(-87.1875, 87.1875, 32), 4, False)
        ),
        [-67.5, -22.5, 22.5, 67.5],
    )
    region_lat = np.arange(48.0, 80.0, 2.0)  # 16 rows at 2 deg: tokens at 51, 59, 67, 75
    region = WindowGeometry((3, 4, 8), (2, 2, 8), shifted=False)
    types, nearest = _bias_type_map(
        region,
        token_latitudes(region_lat, 4, False),
        globe,
        token_latitudes(np.linspace(-87.1875, 87.1875, 32), 4, False),
    )
    assert nearest == [3, 3]  # centres 55 and 71 N: both nearest the 45-90 N window
    n_pressure_windows = globe.window_counts[0]
    assert list(types) == [p * 4 + 3 for p in range(n_pressure_windows) for _ in range(2)]
    # Other pressure tokens (surface-only data): no mapping, the bias starts fresh.
    surface_only = WindowGeometry((1, 4, 8), (2, 2, 8), shifted=False)
    assert (
        _bias_type_map(
            surface_only,
            token_latitudes(region_lat, 4, False),
            globe,
            token_latitudes(np.linspace(-87.1875, 87.1875, 32), 4, False),
        )
        is None
    )


def test_transfer_copies_blocks_maps_bias_and_keeps_new_head():
    pretrained = EarthSpecificTransformer(BACKBONE, rngs=nnx.Rngs(params=5, dropout=6))
    pretrained_params = nnx.state(pretrained, nnx.Param)
    config = _config()
    network = DownscalingNetwork(config, rngs=nnx.Rngs(0))
    params = nnx.state(network, nnx.Param)
    region_lat = np.linspace(30.0, 65.0, 8)
    new, report = transfer_pretrained(
        params,
        pretrained_params,
        config,
        region_lat,
        BACKBONE,
        np.linspace(-84.375, 84.375, 16),
        prefix="",
        pretrained_prefix="",
    )
    mine = dict(zip(parameter_names(new), jax.tree.leaves(new)))
    theirs = dict(zip(parameter_names(pretrained_params), jax.tree.leaves(pretrained_params)))
    key = "backbone.encoder_coarse.blocks.1.mlp.fc2.kernel.value"
    np.testing.assert_array_equal(mine[key], theirs[key])
    np.testing.assert_array_equal(
        mine["patch_embedding.upper.kernel.value"], theirs["patch_embedding.upper.kernel.value"]
    )
    assert "head.upper.kernel.value" in report.new
    assert not np.any(np.asarray(mine["head.upper.kernel.value"]))
    assert len(report.bias_mapped) == sum(config.depths)
    bias = "backbone.encoder_fine.blocks.0.attention.position_bias.table.value"
    types = np.asarray(theirs[bias]).shape[1]
    chosen = np.asarray(mine[bias])
    # Every regional window type is one of the global types, the northern ones.
    for t in range(chosen.shape[1]):
        matches = [
            g for g in range(types) if np.array_equal(chosen[:, t], np.asarray(theirs[bias])[:, g])
        ]
        assert matches and all(g % 2 == 1 for g in matches)


@pytest.mark.parametrize(
    "bad", [dict(n_levels=0), dict(n_upper_vars=0, n_surface_vars=0, n_levels=0)]
)
def test_inconsistent_network_configs_are_rejected(bad):
    with pytest.raises(ValueError):
        _config(**bad)
