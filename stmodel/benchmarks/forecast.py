"""`stmodel bench forecast`: a 10-day forecast by the learned model against the
dinosaur dynamical core simulating the same 10 days, on this machine."""

from __future__ import annotations

import os
import platform
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from stmodel.benchmarks.model import median_seconds
from stmodel.data.layout import NormalisationStats
from stmodel.forecasting.schedule import greedy_steps
from stmodel.model.config import ModelConfig
from stmodel.model.earth_transformer import EarthSpecificTransformer
from stmodel.model.wrappers import NormalisedResidualModel
from stmodel.simulation.dynamics import build_model, initial_state, one_day_advance

# The built-in default data: 13 levels x 4 upper-air variables, 4 surface fields,
# 4 position encodings, 32 x 64 grid (what cpu-small trains on).
DEFAULT_DATA_SHAPE = dict(
    grid=(32, 64), n_levels=13, n_upper_vars=4, n_surface_vars=4, n_constant_fields=4
)


def unit_stats(config: ModelConfig) -> NormalisationStats:
    """Statistics of ones in the config's shapes: a benchmark's model needs no data."""
    return NormalisationStats(
        *(
            np.ones(s, np.float32)
            for s in ((config.n_levels, config.n_upper_vars),) * 3 + ((config.n_surface_vars,),) * 3
        )
    )


def _one_step_function(config: ModelConfig):
    """A jitted physical-units step of a randomly initialised model (speed does not
    depend on the weights)."""
    stats = unit_stats(config)
    model = NormalisedResidualModel(EarthSpecificTransformer(config, rngs=nnx.Rngs(0)), stats)
    graphdef, state = nnx.split(model)
    constants = jnp.zeros(config.grid + (config.n_constant_fields,), jnp.float32)

    @jax.jit
    def step(state, upper, surface):
        return nnx.merge(graphdef, state)(upper, surface, constants)

    return lambda upper, surface: step(state, upper, surface)


def time_learned_forecast(config: ModelConfig, n_steps: int, repeats: int) -> float:
    step = _one_step_function(config)
    upper = jnp.zeros((1, config.n_levels) + config.grid + (config.n_upper_vars,), jnp.float32)
    surface = jnp.zeros((1,) + config.grid + (config.n_surface_vars,), jnp.float32)
    jax.block_until_ready(step(upper, surface))  # compile

    def forecast():
        u, s = upper, surface
        for _ in range(n_steps):
            u, s = step(u, s)
        return u, s

    return median_seconds(forecast, repeats)[0]


def time_dycore(
    days: int,
    truncation: int = 21,
    layers: int = 24,
    time_step_minutes: float = 30.0,
    repeats: int = 3,
) -> float:
    return median_seconds(dycore_run(days, truncation, layers, time_step_minutes), repeats)[0]


def dycore_run(
    days: int, truncation: int, layers: int, time_step_minutes: float, members: int = 1
) -> Callable[[], Any]:
    """A call simulating `days` days by the dycore; with `members` > 1, that many runs
    stepped together (vmapped), each from its own perturbed initial state (the surface
    pressure bump where the member's seed puts it). The first day, from the state at rest,
    runs here: the untimed warm-up."""
    model = build_model(truncation, layers, time_step_minutes)
    advance = one_day_advance(model)
    states = [initial_state(model, seed=m, perturbation_pa=5000.0) for m in range(members)]
    if members > 1:
        advance = jax.jit(jax.vmap(advance))
        states = [jax.tree.map(lambda *fields: jnp.stack(fields), *states)]
    state = jax.block_until_ready(advance(states[0]))

    def simulate():
        s = state
        for _ in range(days):
            s = advance(s)
        return s

    return simulate


def benchmark_forecast(preset: str = "small", days: int = 10, repeats: int = 3) -> dict:
    """Median seconds of the learned forecasts and of the dycore over `days`; a JSON-ready dict."""
    config = ModelConfig.preset(preset, **DEFAULT_DATA_SHAPE)
    lead = days * 24
    steps_6h = len(greedy_steps(lead, (6,)))
    steps_24h = len(greedy_steps(lead, (24, 6)))
    model_6h = time_learned_forecast(config, steps_6h, repeats)
    model_24h = time_learned_forecast(config, steps_24h, repeats)
    dycore = time_dycore(days, repeats=repeats)
    # The built-in data are simulated with a 60 min step (same climate at T21, see
    # simulate_presets): the cheapest dycore run that makes them.
    dycore_60min = time_dycore(days, time_step_minutes=60.0, repeats=repeats)
    return {
        "benchmark": "forecast",
        "days": days,
        "model_preset": preset,
        "grid": list(config.grid),
        "learned_6h_steps": steps_6h,
        "learned_6h_s": model_6h,
        "learned_24h_plus_6h_steps": steps_24h,
        "learned_24h_plus_6h_s": model_24h,
        "dycore": "dinosaur Held-Suarez T21, 24 sigma levels, 30 min step",
        "dycore_s": dycore,
        "speedup_6h_vs_dycore": dycore / model_6h,
        "speedup_24h_vs_dycore": dycore / model_24h,
        "dycore_60min_step_s": dycore_60min,
        "speedup_6h_vs_dycore_60min_step": dycore_60min / model_6h,
        "speedup_24h_vs_dycore_60min_step": dycore_60min / model_24h,
        "device": jax.devices()[0].platform,
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "load_average": list(os.getloadavg()),
        "note": "compile time excluded; medians of repeats; batch 1; the 24 h model reaches "
        "day 10 in 10 steps (with 6-hourly output it needs 40, as the 6 h model)",
    }
