"""The one training loop, for every task (stmodel.training.task).

Resuming is exact: the batch at step s depends only on (seed, s), the random
key of step s is fold_in(seed key, s), and parameters, optimiser state and EMA
come back bit for bit from the newest checkpoint. A checkpoint holds them as
separate items (params, optimizer, ema_params), beside the task's static arrays
and metadata, so that inference reads the parameters alone.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import resource
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from tqdm.auto import tqdm

from stmodel.atomic_files import atomic_path, make_folder
from stmodel.checkpoints.store import CheckpointStore, parameter_checksum
from stmodel.data.pipeline import read_ahead
from stmodel.errors import UserError
from stmodel.stop_signals import stop_requested
from stmodel.training import metrics_log, sharding
from stmodel.training.optimizer import make_optimizer
from stmodel.training.step import TrainState, make_train_step
from stmodel.training.task import LoopSettings, TrainingTask

logger = logging.getLogger(__name__)
# optax.apply_if_finite applies an update anyway after this many bad steps in a row;
# nan_policy=skip means never.
NEVER = 2**31 - 1


class NonFiniteLoss(UserError):
    pass


@dataclasses.dataclass
class TrainResult:
    step: int
    checksum: str
    metrics: dict
    stopped_by: int | None = None  # the signal that stopped training early, after saving


def run(
    task: TrainingTask,
    settings: LoopSettings,
    workdir: Path,
    *,
    mesh_shape: tuple[int, int] | None = None,
    progress: bool = True,
    stop_after: int | None = None,
) -> TrainResult:
    """Train (or resume) `task` into workdir; stop_after: at most this many steps now."""
    t_begin = time.perf_counter()
    workdir = Path(workdir)
    make_folder(workdir, "--workdir")
    mesh = sharding.make_mesh(mesh_shape or settings.mesh)
    n_shards = mesh.shape[sharding.DATA] * mesh.shape[sharding.FSDP]
    if settings.batch_size % n_shards:
        raise UserError(
            f"batch_size {settings.batch_size} must be a multiple of the "
            f"{n_shards} devices of the {mesh.shape[sharding.DATA]}x"
            f"{mesh.shape[sharding.FSDP]} mesh"
        )
    tx = make_optimizer(settings.optimizer, settings.steps, task.params, task.frozen)
    if settings.nan_policy == "skip":
        tx = optax.apply_if_finite(tx, max_consecutive_errors=NEVER)
    ema_decay = settings.optimizer.ema_decay
    # The EMA starts as a copy: one buffer in two places of the state cannot be donated.
    state = TrainState(task.params, tx.init(task.params), _copy(task.params) if ema_decay else None)
    state_shardings = sharding.tree_shardings(mesh, state)

    store = CheckpointStore(workdir / "checkpoints", keep=settings.keep_checkpoints)
    start_step = 0
    if store.latest_step() is not None:
        start_step, state = _resume(store, task, state, state_shardings, mesh, workdir, progress)
    if start_step > settings.steps:
        store.close()
        raise UserError(
            f"{workdir}: holds a run at step {start_step}, past the {settings.steps} steps "
            f"asked for; ask for {start_step} steps or more to resume it, or use a new --workdir"
        )
    state = jax.device_put(state, state_shardings)

    fixed_order = (
        (task.batch_axes, n_shards, state_shardings.params)
        if settings.fixed_order_gradients
        else None
    )
    train_step = jax.jit(
        make_train_step(task.loss, tx, ema_decay, fixed_order),
        out_shardings=(state_shardings, None),
        donate_argnums=(0,),
    )

    def to_device(batch):
        return _to_global(mesh, batch, task.batch_axes)

    base_key = jax.random.key(settings.seed)
    metrics_path = workdir / "metrics.jsonl"
    metrics_log.truncate_after(metrics_path, start_step)
    end_step = (
        settings.steps if stop_after is None else min(settings.steps, start_step + stop_after)
    )
    leader = jax.process_index() == 0
    step, last, skipped, step_times = start_step, {}, 0, []
    # Batches read while a step trains, settings.prefetch of them, one thread each; in step
    # order, and each depends only on (seed, step): the run is the same for any read-ahead.
    batches = read_ahead(task.batch, start_step, end_step, settings.prefetch)
    with (
        stop_requested() as stop,
        tqdm(
            total=settings.steps,
            initial=start_step,
            desc=task.description,
            unit="step",
            disable=not progress or not leader,
        ) as bar,
    ):
        try:
            while step < end_step:
                t0 = time.perf_counter()
                batch = next(batches)
                state, out = train_step(state, to_device(batch), jax.random.fold_in(base_key, step))
                loss = float(out["loss"])
                step += 1
                step_times.append(time.perf_counter() - t0)
                if not bool(out["finite"]):
                    if settings.nan_policy == "stop":
                        raise NonFiniteLoss(_non_finite_message(step, loss, store))
                    skipped += 1
                last = {
                    "step": step,
                    "loss": loss,
                    "grad_norm": float(out["grad_norm"]),
                    "samples_per_s": settings.batch_size / _steady_seconds(step_times),
                    "skipped_steps": skipped,
                }
                validation_loss = None
                if settings.validate_every > 0 and (
                    step % settings.validate_every == 0 or step == end_step
                ):
                    params = state.ema_params if state.ema_params is not None else state.params
                    scores = task.validate(params, to_device)
                    validation_loss = scores.get("validation_loss")
                    last.update(scores)
                if leader:
                    metrics_log.append(metrics_path, last)
                bar.set_postfix(loss=f"{loss:.4f}", samples_s=f"{last['samples_per_s']:.2f}")
                bar.update()
                if step % settings.checkpoint_every == 0 or step == end_step or stop.is_set():
                    store.save(step, *_checkpoint(task, state, step, settings), validation_loss)
                if stop.is_set():
                    logger.info(
                        "stop requested: saved step %d; run the same command to resume", step
                    )
                    break
        finally:
            batches.close()
            store.wait()
            store.close()
    checksum = parameter_checksum(state.params)
    kept = _summary_of_step(workdir, step) if step == start_step else None
    if kept is not None:
        # Nothing trained now (the run had reached its steps): the summary of the run that
        # did, validation scores and all, stays as it is.
        return TrainResult(step, checksum, kept, stop.signum)
    summary = {
        **last,
        "final_step": step,
        "start_step": start_step,
        "parameter_checksum": checksum,
        # The first step of an invocation includes compilation.
        "seconds_per_step": _steady_seconds(step_times),
        "peak_memory_gib": peak_memory_gib(),
        "wall_s": time.perf_counter() - t_begin,
        **task.summary(state.params),
    }
    if leader:
        with atomic_path(workdir / "summary.json") as temporary:
            temporary.write_text(json.dumps(summary, indent=2))
    return TrainResult(step, checksum, summary, stop.signum)


def _summary_of_step(workdir: Path, step: int) -> dict | None:
    """The workdir's summary.json, where it is that of a run which ended at `step`."""
    try:
        summary = json.loads((workdir / "summary.json").read_text())
    except (OSError, ValueError):
        return None
    return summary if isinstance(summary, dict) and summary.get("final_step") == step else None


def _resume(store, task, state, state_shardings, mesh, workdir, progress):
    """(step, state) of the newest good checkpoint; damaged newer ones are set aside."""
    meta = store.read_meta()
    if meta.get("format") != task.checkpoint_format:
        raise UserError(
            f"{workdir}: holds checkpoints of format {meta.get('format')!r}, not this "
            f"command's {task.checkpoint_format!r} (another command or an older stmodel); "
            "use a new --workdir (an older global checkpoint can be a warm_start=)"
        )
    task.check_resumable(meta)
    # Arrays of other shapes are another run's (other variables, levels or grid), which
    # restoring would call damage and set aside.
    differing = store.differing_shapes("params", state.params)
    if differing:
        raise UserError(
            f"{workdir}: holds a run whose parameters have other shapes than this run's "
            f"({', '.join(differing[:3])}{' ...' if len(differing) > 3 else ''}), trained on "
            "data of other variables, levels or grid; use a new --workdir, or the data it was "
            "trained on to resume"
        )

    def abstract(tree, shardings):
        return jax.tree.map(
            lambda a, s: jax.ShapeDtypeStruct(np.shape(a), a.dtype, sharding=s), tree, shardings
        )

    replicated = sharding.replicated(mesh)
    items = {
        "params": abstract(state.params, state_shardings.params),
        "optimizer": abstract(state.opt_state, state_shardings.opt_state),
        "static": jax.tree.map(
            lambda a: jax.ShapeDtypeStruct(np.shape(a), np.asarray(a).dtype, sharding=replicated),
            task.static_arrays(),
        ),
    }
    if state.ema_params is not None:
        items["ema_params"] = abstract(state.ema_params, state_shardings.ema_params)
    restored, meta = store.restore(items)
    if store.set_aside_damaged() and progress and jax.process_index() == 0:
        logger.info("resuming from step %d, the newest good checkpoint", meta["step"])
    state = TrainState(restored["params"], restored["optimizer"], restored.get("ema_params"))
    return int(meta["step"]), state


def _checkpoint(task, state: TrainState, step: int, settings: LoopSettings) -> tuple[dict, dict]:
    items = {"params": state.params, "optimizer": state.opt_state, "static": task.static_arrays()}
    if state.ema_params is not None:
        items["ema_params"] = state.ema_params
    meta = {
        **task.metadata(),
        "format": task.checkpoint_format,
        "step": step,
        "has_ema": state.ema_params is not None,
        "data_position": {"seed": settings.seed, "step": step},
    }
    return items, meta


def _non_finite_message(step: int, loss: float, store: CheckpointStore) -> str:
    store.wait()
    kept = (
        f"The last good checkpoint is step {store.latest_step()} in {store.directory}."
        if store.latest_step() is not None
        else "No checkpoint had been saved yet."
    )
    return (
        f"step {step}: the loss or gradients became NaN/Inf (loss {loss}); stopped. {kept} "
        "Try a lower learning rate, or nan_policy=skip to skip such steps"
    )


def _steady_seconds(step_times: list[float]) -> float:
    """Median seconds per step, without the first (compilation) where there are more."""
    steady = step_times[1:] or step_times
    return float(np.median(steady)) if steady else float("nan")


def _to_global(mesh, batch, batch_axes):
    """Per-sample fields assembled from every process's share and split over the devices;
    shared fields replicated."""

    def place(axis, x):
        if x is None:
            return None
        if axis is None:
            return jnp.asarray(x)
        return sharding.global_batch(mesh, np.asarray(x))

    return jax.tree.map(place, batch_axes, batch, is_leaf=lambda x: x is None)


def _copy(tree):
    return jax.tree.map(lambda x: jnp.array(x, copy=True), tree)


def peak_memory_gib() -> float:
    """Peak device memory where the backend reports it, else the process's peak RSS."""
    stats = jax.local_devices()[0].memory_stats() or {}
    if "peak_bytes_in_use" in stats:
        return stats["peak_bytes_in_use"] / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
