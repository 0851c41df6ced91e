"""Floating-point operation counts of the network: analytic, and from XLA's cost analysis.

The analytic count covers the matrix products (2 FLOP per multiply-add), which
are nearly all of the work; XLA's count also includes the elementwise operations
(normalisation, softmax, GELU, the optimiser) of the compiled program. The two
cross-check each other.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax

from stmodel.model.config import ModelConfig
from stmodel.model.window_geometry import WindowGeometry


def _dense(tokens: int, fan_in: int, fan_out: int) -> int:
    return 2 * tokens * fan_in * fan_out


def _block(batch: int, dim: int, geometry: WindowGeometry, mlp_ratio: float) -> int:
    tokens = batch * math.prod(geometry.token_grid)
    hidden = int(dim * mlp_ratio)
    projections = _dense(tokens, dim, 3 * dim) + _dense(tokens, dim, dim)
    # Query-key and weight-value products over all heads, on the real tokens of each window.
    attention = 2 * 2 * batch * geometry.attention_pairs() * dim
    mlp = _dense(tokens, dim, hidden) + _dense(tokens, hidden, dim)
    return projections + attention + mlp


def analytic_forward_flops(config: ModelConfig, batch: int = 1) -> int:
    """Matrix-product FLOPs of one forward pass of EarthSpecificTransformer."""
    c = config
    p_level, p_lat, p_lon = c.patch
    _n_pressure, n_lat, n_lon = c.token_grid
    upper_tokens = batch * c.n_upper_tokens * n_lat * n_lon
    surface_tokens = batch * n_lat * n_lon
    coarse_tokens = batch * math.prod(c.coarse_token_grid)
    fine_tokens = batch * math.prod(c.token_grid)
    total = _dense(upper_tokens, p_level * p_lat * p_lon * c.n_upper_vars, c.dim)
    total += _dense(surface_tokens, p_lat * p_lon * (c.n_surface_vars + c.n_constant_fields), c.dim)
    grids = (c.token_grid, c.coarse_token_grid, c.coarse_token_grid, c.token_grid)
    for dim, grid, depth in zip(c.stage_dims, grids, c.depths):
        total += sum(
            _block(batch, dim, WindowGeometry(grid, c.window, shifted=index % 2 == 1), c.mlp_ratio)
            for index in range(depth)
        )
    total += _dense(coarse_tokens, 4 * c.dim, 2 * c.dim)  # down-sampling
    total += _dense(coarse_tokens, 2 * c.dim, 4 * c.dim) + _dense(fine_tokens, c.dim, c.dim)  # up
    total += _dense(upper_tokens, 2 * c.dim, p_level * p_lat * p_lon * c.n_upper_vars)
    total += _dense(surface_tokens, 2 * c.dim, p_lat * p_lon * c.n_surface_vars)
    return total


def analytic_train_step_flops(config: ModelConfig, batch: int = 1) -> int:
    """Forward + backward matrix products: the backward pass costs two forwards (gradients with
    respect to inputs and to weights); per-block rematerialisation adds one more forward."""
    return (4 if config.remat else 3) * analytic_forward_flops(config, batch)


def xla_flops(function: Callable, *args: Any) -> float:
    """FLOPs of jax.jit(function)(*args) by XLA's cost analysis of the compiled program."""
    compiled = jax.jit(function).lower(*args).compile()
    return compiled_flops(compiled)


def compiled_flops(compiled: Any) -> float:
    """FLOPs from a compiled executable's cost analysis (a dict, or a list of one per device)."""
    analysis = compiled.cost_analysis()
    if isinstance(analysis, (list, tuple)):
        analysis = analysis[0]
    return float(analysis.get("flops", float("nan")))
