"""Memory plan of the training step and of one forecast step, compiled ahead of time.

Used by ``stmodel bench memory``. Nothing runs and no parameter is materialised: the
model, its AdamW state and the batch exist only as shapes (``nnx.eval_shape``,
``jax.ShapeDtypeStruct`` with shardings), ``jax.jit(...).lower(...).compile()`` builds
the programs, and XLA's buffer assignment says how many bytes one device needs
(``compiled.memory_analysis()``). The training step is sharded as ``stmodel train``
shards it: parameters and optimiser state along the fsdp axis of a (data, fsdp) mesh,
the batch along both axes. The forecast step is inference on one device, batch 1.

Devices: the mesh takes the default backend's devices when there are enough, else the
host's (CPU) devices, whose number ``--xla_force_host_platform_device_count`` in
XLA_FLAGS sets; :func:`request_host_devices` sets it before JAX starts its backend.
"""

from __future__ import annotations

import logging
import os
import re
import time
from typing import Any

from stmodel.errors import UserError

logger = logging.getLogger(__name__)

DEVICE_COUNT_FLAG = "--xla_force_host_platform_device_count"
# XLA:CPU's default scheduler orders operations for parallelism and keeps far more buffers
# alive than a memory-minimising order (pangu at 91 x 180 with remat: 2.3 GiB of temporaries
# instead of 1.3 GiB), and it undoes most of what remat saves. Accelerators schedule
# with a memory limit, so the memory-minimising order is the closer plan of theirs.
MEMORY_SCHEDULER_FLAG = "--xla_cpu_enable_concurrency_optimized_scheduler=false"
GIB = 2**30


def request_host_devices(count: int) -> None:
    """Ask for at least `count` host (CPU) devices; before JAX initialises its backend.

    If JAX's backend is already running with fewer host devices, stop in one line. Also
    asks XLA:CPU for its memory-minimising schedule (MEMORY_SCHEDULER_FLAG) unless XLA_FLAGS
    already chooses.
    """
    from jax._src import xla_bridge

    if xla_bridge.backends_are_initialized():
        import jax

        have = len(jax.devices("cpu"))
        if have < count:
            raise UserError(
                f"bench memory: needs {count} devices but JAX already started with {have} "
                f"CPU devices; run it in a new process, or set XLA_FLAGS={DEVICE_COUNT_FLAG}="
                f"{count} before JAX starts"
            )
        return
    flags = os.environ.get("XLA_FLAGS", "")
    if MEMORY_SCHEDULER_FLAG.split("=")[0] not in flags:
        flags = f"{flags} {MEMORY_SCHEDULER_FLAG}"
    match = re.search(rf"{DEVICE_COUNT_FLAG}=(\d+)", flags)
    if not match or int(match.group(1)) < count:
        flags = re.sub(rf"\s*{DEVICE_COUNT_FLAG}=\d+", "", flags)
        flags = f"{flags} {DEVICE_COUNT_FLAG}={count}"
    os.environ["XLA_FLAGS"] = flags.strip()


def _devices(count: int) -> list:
    """`count` devices of the default backend, or of the host when it has too few."""
    import jax

    devices = jax.devices()
    if len(devices) < count and devices[0].platform != "cpu":
        logger.warning(
            "bench memory: %d %s devices, %d needed; compiling for CPU devices instead",
            len(devices),
            devices[0].platform,
            count,
        )
        devices = jax.devices("cpu")
    if len(devices) < count:
        raise UserError(
            f"bench memory: needs {count} devices, {len(devices)} present "
            f"(set XLA_FLAGS={DEVICE_COUNT_FLAG}={count} before JAX starts)"
        )
    return devices[:count]


def memory_stats(compiled: Any) -> dict:
    """Bytes of one device's buffers from XLA's buffer assignment, and the compiled FLOPs."""
    from stmodel.benchmarks.flops import compiled_flops

    stats = compiled.memory_analysis()
    if isinstance(stats, (list, tuple)):
        stats = stats[0]
    argument = int(stats.argument_size_in_bytes)
    output = int(stats.output_size_in_bytes)
    temp = int(stats.temp_size_in_bytes)
    alias = int(stats.alias_size_in_bytes)
    per_device = argument + output + temp - alias
    result = {
        "per_device_bytes": per_device,
        "per_device_gib": per_device / GIB,
        "argument_bytes": argument,
        "output_bytes": output,
        "temp_bytes": temp,
        "alias_bytes": alias,
        "generated_code_bytes": int(stats.generated_code_size_in_bytes),
    }
    result["flops"] = compiled_flops(compiled)  # one device's share of the sharded program
    return result


def _abstract_network(config):
    """(graphdef, abstract params, abstract rest) of the network: shapes only."""
    from flax import nnx

    from stmodel.model.earth_transformer import abstract_model

    return nnx.split(abstract_model(config), nnx.Param, ...)


def _abstract(tree, shardings):
    import jax

    return jax.tree.map(
        lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree, shardings
    )


def _input_shapes(config, batch: int) -> dict[str, tuple[int, ...]]:
    lat, lon = config.grid
    return {
        "upper": (batch, config.n_levels, lat, lon, config.n_upper_vars),
        "surface": (batch, lat, lon, config.n_surface_vars),
        "constants": (lat, lon, config.n_constant_fields),
        "target_upper": (batch, config.n_levels, lat, lon, config.n_upper_vars),
        "target_surface": (batch, lat, lon, config.n_surface_vars),
    }


def _count(tree) -> int:
    import jax
    import numpy as np

    return int(sum(np.prod(x.shape) for x in jax.tree.leaves(tree)))


def _config_keys(config, preset: str) -> dict:
    return {"preset": preset, "grid": list(config.grid), "dtype": config.dtype}


def train_step_memory(config, preset: str, mesh_shape: tuple[int, int], batch: int) -> dict:
    """Compile the sharded training step (forward, backward, clipped AdamW) for shapes only."""
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from stmodel.benchmarks.model import pangu_loss
    from stmodel.training import sharding
    from stmodel.training.config import OptimizerConfig
    from stmodel.training.optimizer import make_optimizer
    from stmodel.training.step import TrainState, make_train_step

    data, fsdp = mesh_shape
    n = data * fsdp
    if batch % n:
        raise UserError(f"bench memory: --batch {batch} is not a multiple of the {n} devices")
    mesh = jax.make_mesh(
        (data, fsdp),
        (sharding.DATA, sharding.FSDP),
        axis_types=(jax.sharding.AxisType.Auto,) * 2,
        devices=_devices(n),
    )
    graphdef, params, rest = _abstract_network(config)
    tx = make_optimizer(OptimizerConfig(), 1000, params)
    opt_state = jax.eval_shape(tx.init, params)
    state = TrainState(params, opt_state, None)
    state_shardings = sharding.tree_shardings(mesh, state)
    replicated = sharding.replicated(mesh)

    def loss_fn(params_, batch_, key):
        model = nnx.merge(graphdef, params_, batch_["rest"], copy=True)
        nnx.reseed(model, dropout=key)
        predicted = model(
            batch_["upper"], batch_["surface"], batch_["constants"], deterministic=False
        )
        return pangu_loss(predicted, (batch_["target_upper"], batch_["target_surface"]))

    shapes = _input_shapes(config, batch)
    batch_tree = {
        name: jax.ShapeDtypeStruct(
            shape,
            jnp.float32,
            sharding=replicated
            if name == "constants"
            else sharding.batch_sharding(mesh, len(shape)),
        )
        for name, shape in shapes.items()
    }
    batch_tree["rest"] = _abstract(rest, jax.tree.map(lambda _: replicated, rest))
    key = jax.ShapeDtypeStruct((), jax.random.key(0).dtype, sharding=replicated)
    abstract_state = _abstract(state, state_shardings)
    step = jax.jit(
        make_train_step(loss_fn, tx),
        out_shardings=(state_shardings, None),
        donate_argnums=(0,),
    )
    logger.info(
        "bench memory: compiling the training step on a %dx%d mesh, batch %d", data, fsdp, batch
    )
    start = time.perf_counter()
    lowered = step.lower(abstract_state, batch_tree, key)
    lower_s = time.perf_counter() - start
    compiled = lowered.compile()
    compile_s = time.perf_counter() - start - lower_s
    return {
        **_config_keys(config, preset),
        "remat": config.remat,
        "mesh": [data, fsdp],
        "devices": n,
        "batch": batch,
        "backend": mesh.devices.flat[0].platform,
        "params": _count(params),
        "param_bytes": sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(params)),
        "optimizer_state_bytes": sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(opt_state)),
        **memory_stats(compiled),
        "lower_s": lower_s,
        "compile_s": compile_s,
    }


def forecast_step_memory(config, preset: str) -> dict:
    """Compile one forecast step (inference, batch 1) on one device, for shapes only."""
    import jax
    import jax.numpy as jnp
    from flax import nnx
    from jax.sharding import SingleDeviceSharding

    (device,) = _devices(1)
    on_device = SingleDeviceSharding(device)
    graphdef, params, rest = _abstract_network(config)
    shapes = _input_shapes(config, 1)

    def forward(params_, rest_, upper, surface, constants):
        model = nnx.merge(graphdef, params_, rest_, copy=True)
        return model(upper, surface, constants, deterministic=True)

    def place(tree):
        return _abstract(tree, jax.tree.map(lambda _: on_device, tree))

    inputs = [
        jax.ShapeDtypeStruct(shapes[name], jnp.float32, sharding=on_device)
        for name in ("upper", "surface", "constants")
    ]
    logger.info("bench memory: compiling one forecast step on one device")
    start = time.perf_counter()
    lowered = jax.jit(forward).lower(place(params), place(rest), *inputs)
    lower_s = time.perf_counter() - start
    compiled = lowered.compile()
    compile_s = time.perf_counter() - start - lower_s
    return {
        **_config_keys(config, preset),
        "devices": 1,
        "batch": 1,
        "backend": device.platform,
        "params": _count(params),
        **memory_stats(compiled),
        "lower_s": lower_s,
        "compile_s": compile_s,
    }


def benchmark_memory(
    config,
    preset: str,
    mesh_shape: tuple[int, int],
    batch: int,
    *,
    train: bool = True,
    forecast: bool = True,
) -> dict:
    """The JSON of ``stmodel bench memory``: {"train": {...}, "forecast": {...}}."""
    import jax

    result: dict[str, Any] = {
        "benchmark": "memory",
        "jax_version": jax.__version__,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }
    if train:
        result["train"] = train_step_memory(config, preset, mesh_shape, batch)
    if forecast:
        result["forecast"] = forecast_step_memory(config, preset)
    return result
