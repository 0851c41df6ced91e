"""Window attention, the Earth-specific bias and the window masks, against a naive reference."""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from stmodel.model.config import ModelConfig
from stmodel.model.earth_transformer import abstract_model
from stmodel.model.parameter_names import named_arrays
from stmodel.model.precision import DtypePolicy
from stmodel.model.transformer_block import EarthTransformerBlock
from stmodel.model.window_attention import ATTENTION_PATHS, EarthWindowAttention, attention_path
from stmodel.model.window_geometry import WindowGeometry

F32 = DtypePolicy.from_name("float32")


def naive_attention(module: EarthWindowAttention, x: np.ndarray) -> np.ndarray:
    """Window attention written token by token from the definitions, in float64.

    Windows are defined directly: along pressure and latitude (zero-padded, half before,
    half after, to whole windows) a shifted block uses windows offset by half a window,
    with partial windows at the edges; along longitude (padded at the end) a shifted
    block uses windows offset by half a window around the circle of real longitudes.
    Padded tokens are never attended to. The bias row of a (query, key) pair follows
    the published index formula.
    """
    geometry = module.geometry
    heads = module.heads
    wp, wl, wo = geometry.window
    n_p, n_l, n_o = geometry.token_grid
    shift = geometry.shift
    w_qkv = np.asarray(module.qkv.kernel[...], np.float64)
    b_qkv = np.asarray(module.qkv.bias[...], np.float64)
    w_proj = np.asarray(module.proj.kernel[...], np.float64)
    b_proj = np.asarray(module.proj.bias[...], np.float64)
    table = np.asarray(module.position_bias.table[...], np.float64)
    x = np.asarray(x, np.float64)
    batch, dim = x.shape[0], x.shape[-1]
    head_dim = dim // heads
    n_lat_windows = geometry.window_counts[1]

    def place(p, l, o):
        """(effective window, window type, position in window) of a real token."""
        placed = []
        for pos, length, w, s, before in (
            (p, n_p, wp, shift[0], geometry.padding[0][0]),
            (l, n_l, wl, shift[1], geometry.padding[1][0]),
        ):
            padded = length + (-length % w)
            moved = pos + before - s  # position in the offset frame
            placed.append((moved // w, (moved % padded) // w, (moved % padded) % w))
        moved_lon = (o - shift[2]) % n_o  # around the circle of real lons
        placed.append((moved_lon // wo, None, moved_lon % wo))
        window = tuple(t[0] for t in placed)
        kind = placed[0][1] * n_lat_windows + placed[1][1]
        return window, kind, tuple(t[2] for t in placed)

    tokens = list(itertools.product(range(n_p), range(n_l), range(n_o)))
    placements = {t: place(*t) for t in tokens}
    qkv = x @ w_qkv + b_qkv
    q, k, v = np.split(qkv, 3, axis=-1)
    out = np.zeros_like(x)
    for b, query in itertools.product(range(batch), tokens):
        window, kind, (pq, lq, oq) = placements[query]
        keys = [t for t in tokens if placements[t][0] == window]
        for h in range(heads):
            sl = slice(h * head_dim, (h + 1) * head_dim)
            logits = []
            for key in keys:
                _, _, (pk, lk, ok) = placements[key]
                row = (
                    (pq + wp * pk) * wl**2 * (2 * wo - 1)
                    + (lq + wl * lk) * (2 * wo - 1)
                    + (oq - ok + wo - 1)
                )
                logits.append(
                    q[(b, *query)][sl] @ k[(b, *key)][sl] / np.sqrt(head_dim) + table[row, kind, h]
                )
            weights = np.exp(np.array(logits) - max(logits))
            weights /= weights.sum()
            out[(b, *query)][sl] = sum(wgt * v[(b, *key)][sl] for wgt, key in zip(weights, keys))
    return out @ w_proj + b_proj


@pytest.mark.parametrize(
    "token_grid, window, shifted",
    [
        ((4, 6, 8), (2, 3, 4), False),
        ((4, 6, 8), (2, 3, 4), True),
        ((3, 5, 6), (2, 3, 4), False),  # padding in all three axes
        ((3, 5, 6), (2, 3, 4), True),
        ((2, 4, 3), (2, 6, 4), True),  # windows larger than the grid
        ((2, 4, 4), (2, 3, 4), False),  # equal windows, different positions in their padded windows
        ((2, 4, 4), (2, 3, 4), True),  # windows of 3 and 1 real latitudes
        ((5, 7, 10), (2, 3, 4), True),  # several window groups along every axis
    ],
)
def test_window_attention_matches_naive_reference(token_grid, window, shifted):
    geometry = WindowGeometry(token_grid, window, shifted)
    module = EarthWindowAttention(8, 2, geometry, policy=F32, rngs=nnx.Rngs(0))
    # Make the bias as large as the logits so that an indexing error cannot hide.
    module.position_bias.table[...] = module.position_bias.table[...] * 50.0
    x = np.random.default_rng(1).standard_normal((2, *token_grid, 8)).astype(np.float32)
    np.testing.assert_allclose(
        np.asarray(module(jnp.asarray(x))), naive_attention(module, x), rtol=1e-4, atol=1e-4
    )


def test_geometry_counts_and_padding():
    geometry = WindowGeometry((8, 181, 360), (2, 6, 12), shifted=True)
    assert geometry.padded_grid == (8, 186, 360)
    assert geometry.padding == ((0, 0), (2, 3), (0, 0))
    assert geometry.n_window_types == 4 * 31
    assert geometry.shift == (1, 3, 6)
    # Latitude windows: 30 of 6 real tokens, then the one that wraps (r0 behind 5 padded).
    assert geometry.run_counts == (1, 2, 1)
    full, edge = geometry.groups
    assert (full.window_counts, full.window_shape) == ((4, 30, 30), (2, 6, 12))
    assert (edge.window_counts, edge.window_shape) == ((4, 1, 30), (2, 1, 12))
    # Only the last pressure window joins the two pressure edges: the mask varies along
    # pressure only, and stays a small constant.
    assert full.allowed.shape == (4, 1, 144, 144) and full.allowed.dtype == bool
    assert full.allowed[:3].all() and not full.allowed[3].all()
    assert full.bias_rows.shape == (144, 144)


def test_groups_tile_the_grid_and_skip_padding():
    # The reference configuration's stage-1 grid: lat 8 -> 12 and lon 16 -> 24 when padded.
    for shifted, pairs in ((False, 81920), (True, 102400)):
        geometry = WindowGeometry((8, 8, 16), (2, 6, 12), shifted)
        covered = np.zeros(geometry.token_grid, int)
        for group in geometry.groups:
            covered[group.slices] += 1
        np.testing.assert_array_equal(covered, 1)
        assert geometry.attention_pairs() == pairs
        assert pairs < 0.35 * math.prod(geometry.window_counts) * geometry.tokens_per_window**2


def _block(token_grid, window, shifted, seed=0):
    return EarthTransformerBlock(
        8,
        2,
        WindowGeometry(token_grid, window, shifted),
        mlp_ratio=2.0,
        drop_path=0.0,
        post_norm=True,
        layer_norm_epsilon=1e-5,
        policy=F32,
        rngs=nnx.Rngs(seed),
    )


def _changed_tokens(block, token_grid, token):
    """Which tokens of the block's output change when one input token does: bool [p, lat, lon]."""
    x = jax.random.normal(jax.random.key(3), (1, *token_grid, 8))
    y = block(x)
    y_changed = block(x.at[(0, *token)].add(1.0))
    return np.asarray(jnp.abs(y_changed - y).max(axis=-1)[0] > 1e-6)


@pytest.mark.parametrize("token_grid", [(4, 6, 8), (3, 5, 6)])
def test_plain_block_is_local_to_its_window(token_grid):
    window = (2, 3, 4)
    block = _block(token_grid, window, shifted=False)
    geometry = block.attention.geometry
    (p0, _), (l0, _), _ = geometry.padding
    for token in [(0, 0, 0), (1, 2, 3), tuple(n - 1 for n in token_grid)]:
        changed = _changed_tokens(block, token_grid, token)
        # Window of every token, from its position in the padded grid.
        p, l, o = np.meshgrid(*[np.arange(n) for n in token_grid], indexing="ij")
        same_window = (
            ((p + p0) // window[0] == (token[0] + p0) // window[0])
            & ((l + l0) // window[1] == (token[1] + l0) // window[1])
            & (o // window[2] == token[2] // window[2])
        )
        assert changed[token]
        assert not (changed & ~same_window).any(), f"change at {token} leaked out of its window"
        assert changed.sum() > 1, "the change did not reach the rest of its window"


def test_shifted_block_masks_latitude_and_pressure_edges_but_wraps_longitude():
    token_grid, window = (4, 6, 8), (2, 3, 4)  # shift (1, 1, 2)
    block = _block(token_grid, window, shifted=True)
    # Shifted windows: pressure {0} {1, 2} {3}; lat {0} {1, 2, 3} {4, 5}; lon {2..5} {6, 7, 0, 1}.
    changed = _changed_tokens(block, token_grid, (0, 0, 0))
    assert not changed[3].any(), "leak across the pressure edge (top <-> bottom)"
    assert not changed[:, 4:].any(), "leak across the latitude edge (south <-> north)"
    assert not changed[1:].any() and not changed[:, 1:].any()
    assert changed[0, 0, 6] and changed[0, 0, 7] and changed[0, 0, 1], (
        "longitude wrap not connected"
    )
    assert not changed[0, 0, 2:6].any()
    # An interior token: its shifted window spans the plain windows' boundaries.
    changed = _changed_tokens(block, token_grid, (1, 1, 3))
    expected = np.zeros(token_grid, bool)
    expected[1:3, 1:4, 2:6] = True
    np.testing.assert_array_equal(changed, expected)


def test_pre_norm_and_post_norm_blocks_differ():
    token_grid, window = (4, 6, 8), (2, 3, 4)
    x = jax.random.normal(jax.random.key(0), (1, *token_grid, 8))
    post = _block(token_grid, window, shifted=False)
    pre = EarthTransformerBlock(
        8,
        2,
        WindowGeometry(token_grid, window, False),
        mlp_ratio=2.0,
        drop_path=0.0,
        post_norm=False,
        layer_norm_epsilon=1e-5,
        policy=F32,
        rngs=nnx.Rngs(0),
    )
    assert np.abs(np.asarray(pre(x) - post(x))).max() > 1e-3


def _attention_pair(token_grid, window, shifted, dtype):
    """The same parameters in the tuned path and in the fused path (XLA's implementation)."""
    geometry = WindowGeometry(token_grid, window, shifted)
    policy = DtypePolicy.from_name(dtype)
    modules = [
        EarthWindowAttention(
            16,
            2,
            geometry,
            policy=policy,
            rngs=nnx.Rngs(0),
            attention=attention,
            fused_implementation="xla",
        )
        for attention in ("tuned", "fused")
    ]
    for module in modules:  # a bias as large as the logits, so an indexing error shows
        module.position_bias.table[...] = module.position_bias.table[...] * 50.0
    return modules


def _attention_and_gradients(module, x):
    """Output, and the gradients of a fixed projection of it w.r.t. input and parameters."""
    weights = jax.random.normal(jax.random.key(5), x.shape)
    graphdef, params = nnx.split(module)

    def loss(params, x):
        out = nnx.merge(graphdef, params)(x)
        return (out.astype(jnp.float32) * weights).sum(), out

    (_, out), (grad_params, grad_x) = jax.jit(
        jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)
    )(params, x)
    return out, grad_x, grad_params


@pytest.mark.parametrize(
    "token_grid, shifted, mask_shapes, dtype",
    [
        ((3, 4, 6), False, {None}, "float32"),  # 4 window groups, padding in every axis
        ((3, 5, 8), True, {None, 2}, "float32"),  # 4 groups, masks shared by all windows
        ((4, 7, 10), True, {4}, "float32"),  # 4 groups, masks varying along pressure
        ((3, 5, 8), True, {None, 2}, "bfloat16"),
        ((4, 6, 8), True, {4}, "bfloat16"),  # masks varying along pressure and latitude
    ],
)
def test_fused_attention_matches_tuned(token_grid, shifted, mask_shapes, dtype):
    """jax.nn.dot_product_attention (XLA's implementation, as on CPU) with the bias and the
    edge mask gives the tuned path's output and gradients (input, weights, bias table)."""
    tuned, fused = _attention_pair(token_grid, (2, 3, 4), shifted, dtype)
    groups = tuned.geometry.groups
    assert {None if g.allowed is None else g.allowed.ndim for g in groups} == mask_shapes
    x = jax.random.normal(jax.random.key(1), (2, *token_grid, 16))
    reference = _attention_and_gradients(tuned, x)
    result = _attention_and_gradients(fused, x)
    names = ["output", "input gradient"] + [
        "/".join(map(str, path)) for path, _ in jax.tree_util.tree_leaves_with_path(result[2])
    ]
    # bfloat16: the two round at different places (the fused path's logits stay float32).
    rtol, atol = (1e-5, 1e-5) if dtype == "float32" else (0.05, 0.1)
    for name, a, b in zip(names, jax.tree.leaves(reference), jax.tree.leaves(result)):
        a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
        scale = np.abs(a).max()  # bfloat16 rounding is relative to the array's magnitude
        np.testing.assert_allclose(b, a, rtol=rtol, atol=atol * scale, err_msg=name)


def test_attention_setting_chooses_code_not_parameters():
    # Older configs (and checkpoints) have no attention field: they get "auto".
    saved = ModelConfig.preset("tiny").to_dict()
    del saved["attention"]
    assert ModelConfig.from_dict(saved) == ModelConfig.preset("tiny", attention="auto")
    with pytest.raises(ValueError, match="attention"):
        ModelConfig.preset("tiny", attention="flash")
    assert attention_path("auto") == ("tuned" if jax.default_backend() == "cpu" else "fused")
    shapes = {}
    for attention in ATTENTION_PATHS:
        params = nnx.state(
            abstract_model(ModelConfig.preset("tiny", attention=attention)), nnx.Param
        )
        shapes[attention] = named_arrays(jax.tree.map(lambda leaf: leaf.shape, params))
    assert shapes["tuned"] == shapes["fused"] == shapes["auto"]
