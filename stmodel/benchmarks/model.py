"""Timing of the network: forward pass and training step (forward, backward, AdamW).

Used by ``stmodel bench model``. Times are medians of repeated calls after
warm-up calls (which include compilation); FLOPs come from XLA's cost analysis
of the same compiled programs, with the analytic matrix-product count beside
them; the machine's matrix-product peak is measured in the same process so the
achieved fraction (MFU) is comparable across machines.
"""

from __future__ import annotations

import functools
import logging
import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from stmodel.benchmarks.flops import (
    analytic_forward_flops,
    analytic_train_step_flops,
    compiled_flops,
)
from stmodel.benchmarks.xla_profile import profile_compiled
from stmodel.model.config import ModelConfig
from stmodel.model.earth_transformer import EarthSpecificTransformer, count_parameters
from stmodel.model.window_attention import attention_path

logger = logging.getLogger(__name__)

# NVIDIA PhysicsNeMo's PyTorch Pangu on a 2-core machine of this project's kind, float32,
# batch 1, at ModelConfig.preset("base") (FACTS.md, "Peer performance").
PYTORCH_REFERENCE = {
    "train_step_s": 1.00,
    "forward_s": 0.29,
    "params": 26.4e6,
    "source": "PhysicsNeMo 2.2.2 Pangu, torch 2.14, float32, 2 CPU cores",
}


def median_seconds(run: Callable[[], Any], repeats: int) -> tuple[float, list[float], float]:
    """Median wall seconds, all wall seconds, and median CPU seconds (all threads) per call.

    CPU seconds well above wall seconds mean the work ran in parallel; wall seconds well
    above CPU seconds on an idle-looking process mean other processes took the cores.
    """
    times, cpu_times = [], []
    for _ in range(repeats):
        start, cpu_start = time.perf_counter(), time.process_time()
        jax.block_until_ready(run())
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    return statistics.median(times), times, statistics.median(cpu_times)


def side_by_side(runs: dict[str, Callable[[], Any]], repeats: int) -> dict[str, float]:
    """Median seconds of each run, the runs taking turns (one call of each a round), so
    that a change in the machine's load falls on all of them alike."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            times[name].append(median_seconds(run, 1)[0])
    return {name: statistics.median(t) for name, t in times.items()}


def measure_matmul_peak(
    dtype: str = "float32", sizes: tuple[int, ...] = (1024, 2048), repeats: int = 5
) -> float:
    """Best median GFLOP/s of a jitted square jnp.dot over the given sizes."""
    best = 0.0
    for size in sizes:
        a = jnp.asarray(np.random.default_rng(0).standard_normal((size, size)), dtype=dtype)
        b = jnp.asarray(np.random.default_rng(1).standard_normal((size, size)), dtype=dtype)
        matmul = jax.jit(jnp.dot)
        jax.block_until_ready(matmul(a, b))
        seconds, _, _ = median_seconds(functools.partial(matmul, a, b), repeats)
        best = max(best, 2 * size**3 / seconds / 1e9)
    return best


def random_inputs(config: ModelConfig, batch: int, seed: int = 0) -> dict[str, jnp.ndarray]:
    """Standard-normal inputs and targets of the config's shapes (normalised space)."""
    rng = np.random.default_rng(seed)
    lat, lon = config.grid
    shapes = {
        "upper": (batch, config.n_levels, lat, lon, config.n_upper_vars),
        "surface": (batch, lat, lon, config.n_surface_vars),
        "constants": (lat, lon, config.n_constant_fields),
        "target_upper": (batch, config.n_levels, lat, lon, config.n_upper_vars),
        "target_surface": (batch, lat, lon, config.n_surface_vars),
    }
    return {
        name: jnp.asarray(rng.standard_normal(shape), dtype=jnp.float32)
        for name, shape in shapes.items()
    }


def pangu_loss(
    predicted: tuple[jnp.ndarray, jnp.ndarray], target: tuple[jnp.ndarray, jnp.ndarray]
) -> jnp.ndarray:
    """The paper's loss: MAE of the upper-air fields + 0.25 x MAE of the surface fields."""
    upper, surface = predicted
    target_upper, target_surface = target
    return jnp.abs(upper - target_upper).mean() + 0.25 * jnp.abs(surface - target_surface).mean()


def make_train_step(graphdef: nnx.GraphDef) -> Callable:
    """A pure, jitted training step on the split (model, optimiser) state, donating the state."""

    def train_step(state, upper, surface, constants, target_upper, target_surface):
        model, optimizer = nnx.merge(graphdef, state)

        def loss_fn(model):
            predicted = model(upper, surface, constants, deterministic=False)
            return pangu_loss(predicted, (target_upper, target_surface))

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return nnx.state((model, optimizer)), loss

    return jax.jit(train_step, donate_argnums=0)


def make_forward(graphdef: nnx.GraphDef) -> Callable:
    def forward(state, upper, surface, constants):
        return nnx.merge(graphdef, state)(upper, surface, constants, deterministic=True)

    return jax.jit(forward)


def benchmark_model(
    config: ModelConfig,
    *,
    batch: int = 1,
    repeats: int = 5,
    warmup: int = 2,
    train: bool = True,
    peak: bool = True,
    profile: bool = False,
) -> dict:
    """Time one forward pass and one training step of the config; a JSON-ready dict.

    profile=True adds the time per XLA operation group (see stmodel.benchmarks.xla_profile).
    """
    result: dict[str, Any] = {
        "benchmark": "model",
        "config": config.to_dict(),
        "batch": batch,
        "repeats": repeats,
        "warmup": warmup,
        "device": jax.devices()[0].device_kind,
        "platform": jax.default_backend(),
        "attention": attention_path(config.attention),  # the path taken: tuned or fused
        "cpu_count": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "jax_version": jax.__version__,
        "load_average_before": list(os.getloadavg()),
    }
    logger.info(
        "bench model: building the model (token grid %s, %s)", config.token_grid, config.dtype
    )
    model = EarthSpecificTransformer(config, rngs=nnx.Rngs(params=0, dropout=1))
    counts = count_parameters(model)
    result["params"] = counts["total"]
    result["position_bias_params"] = counts["position_bias"]
    inputs = random_inputs(config, batch)
    forward_args = (inputs["upper"], inputs["surface"], inputs["constants"])

    logger.info("bench model: compiling the forward pass")
    graphdef, state = nnx.split(model)
    start = time.perf_counter()
    forward = make_forward(graphdef).lower(state, *forward_args).compile()
    result["compile_forward_s"] = time.perf_counter() - start
    result["gflops_forward"] = compiled_flops(forward) / 1e9
    result["gflops_forward_analytic"] = analytic_forward_flops(config, batch) / 1e9
    for _ in range(warmup):
        jax.block_until_ready(forward(state, *forward_args))
    logger.info("bench model: timing %d forward passes", repeats)
    result["forward_s"], result["forward_times_s"], result["forward_cpu_s"] = median_seconds(
        lambda: forward(state, *forward_args), repeats
    )
    result["forward_gflop_per_s"] = result["gflops_forward"] / result["forward_s"]
    if profile:
        logger.info("bench model: profiling the forward pass")
        result["profile_forward"] = profile_compiled(forward, lambda: forward(state, *forward_args))
    del state

    if train:
        logger.info("bench model: compiling the training step (forward, backward, AdamW)")
        optimizer = nnx.Optimizer(model, optax.adamw(1e-4, weight_decay=3e-6), wrt=nnx.Param)
        graphdef, state = nnx.split((model, optimizer))
        step_args = forward_args + (inputs["target_upper"], inputs["target_surface"])
        start = time.perf_counter()
        train_step = make_train_step(graphdef).lower(state, *step_args).compile()
        result["compile_train_step_s"] = time.perf_counter() - start
        result["gflops_per_step"] = compiled_flops(train_step) / 1e9
        result["gflops_per_step_analytic"] = analytic_train_step_flops(config, batch) / 1e9
        for _ in range(warmup):
            state, loss = train_step(state, *step_args)
            jax.block_until_ready(loss)
        logger.info("bench model: timing %d training steps", repeats)
        times, cpu_times = [], []
        for _ in range(repeats):
            begin, cpu_begin = time.perf_counter(), time.process_time()
            state, loss = train_step(state, *step_args)
            jax.block_until_ready((state, loss))
            times.append(time.perf_counter() - begin)
            cpu_times.append(time.process_time() - cpu_begin)
        result["train_step_s"] = statistics.median(times)
        result["train_step_times_s"] = times
        result["train_step_cpu_s"] = statistics.median(cpu_times)
        result["train_gflop_per_s"] = result["gflops_per_step"] / result["train_step_s"]
        result["final_loss"] = float(loss)
        if profile:
            logger.info("bench model: profiling the training step")
            holder = {"state": state}

            def step_once():
                holder["state"], step_loss = train_step(holder["state"], *step_args)
                return step_loss

            result["profile_train_step"] = profile_compiled(train_step, step_once)

    if peak:
        logger.info("bench model: measuring the matrix-product peak")
        result["matmul_peak_gflop_per_s"] = measure_matmul_peak(config.dtype)
        result["mfu_forward"] = result["forward_gflop_per_s"] / result["matmul_peak_gflop_per_s"]
        if train:
            result["mfu_train"] = result["train_gflop_per_s"] / result["matmul_peak_gflop_per_s"]

    if _is_reference_architecture(config) and batch == 1:
        result["pytorch_reference"] = PYTORCH_REFERENCE
        result["speedup_forward_vs_reference"] = (
            PYTORCH_REFERENCE["forward_s"] / result["forward_s"]
        )
        if train:
            result["speedup_train_vs_reference"] = (
                PYTORCH_REFERENCE["train_step_s"] / result["train_step_s"]
            )
    result["load_average_after"] = list(os.getloadavg())
    return result


def _is_reference_architecture(config: ModelConfig) -> bool:
    """Whether the config is the PyTorch reference's network (any dtype, remat, norm place,
    attention path)."""
    reference = ModelConfig.preset("base")
    ignored = {"dtype", "remat", "post_norm", "attention"}
    return all(
        getattr(config, f) == getattr(reference, f)
        for f in reference.__dataclass_fields__
        if f not in ignored
    )
