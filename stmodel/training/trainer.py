"""`stmodel train`: the training loop around the jitted step.

Resuming is exact: the batch at step s depends only on (seed, s), the random
key of step s is fold_in(seed key, s), and parameters and optimiser state come
back bit for bit from the newest checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import resource
import time
from collections.abc import Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr
from tqdm.auto import tqdm

from stmodel.atomic_files import make_folder
from stmodel.data import validation as data_validation
from stmodel.data.pipeline import (
    Augmentation,
    BatchStream,
    SampleSource,
    SplitPeriod,
    default_layout,
    split_periods,
)
from stmodel.data.readers import open_canonical, source_files
from stmodel.data.statistics import StatisticsRequest, compute_or_reuse, normalisation_stats
from stmodel.errors import DataError, UserError
from stmodel.evaluation.area_weights import area_weights
from stmodel.forecasting.checkpoint_model import CheckpointModel
from stmodel.stop_signals import stop_requested
from stmodel.training import metrics_log, sharding
from stmodel.training.checkpointing import CheckpointStore, parameter_checksum
from stmodel.training.config import TrainConfig
from stmodel.training.loss import channel_weights
from stmodel.training.optimizer import make_optimizer
from stmodel.training.step import StepSettings, TrainState, make_eval_step, make_train_step
from stmodel.training.validation import RmseAccumulator


class NonFiniteLoss(UserError):
    pass


@dataclasses.dataclass
class TrainResult:
    step: int
    checksum: str
    metrics: dict
    stopped_by: int | None = None  # the signal that stopped training early, after saving


def train(
    config: TrainConfig,
    data_paths: Sequence[str | Path],
    workdir: Path,
    *,
    steps: int | None = None,
    mesh_shape: tuple[int, int] | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train (or resume) into workdir; return the final step and parameter checksum.

    `steps` overrides config.steps.
    """
    if steps is not None:
        config = dataclasses.replace(config, steps=steps)
    workdir = Path(workdir)
    make_folder(workdir, "--workdir")
    mesh = sharding.make_mesh(mesh_shape or config.mesh)
    n_shards = mesh.shape[sharding.DATA] * mesh.shape[sharding.FSDP]
    if config.batch_size % n_shards:
        raise UserError(
            f"batch_size {config.batch_size} must be a multiple of the "
            f"{n_shards} devices of the {mesh.shape[sharding.DATA]}x"
            f"{mesh.shape[sharding.FSDP]} mesh"
        )

    ds = open_canonical(data_paths)
    data_validation.validate(ds)
    periods = split_periods(ds)
    train_period = (
        SplitPeriod.parse(config.train_period)
        if config.train_period
        else periods.get("train") or _whole(ds)
    )
    val_period = (
        SplitPeriod.parse(config.validation_period)
        if config.validation_period
        else periods.get("validation")
    )
    if "level" not in ds.dims:
        raise DataError(
            f"{', '.join(source_files(ds))}: no pressure levels; the global model needs "
            "upper-air variables on levels (geopotential, temperature, winds), found only "
            f"{', '.join(map(str, ds.data_vars))}. Surface fields alone suit `stmodel downscale`"
        )
    layout = default_layout(ds)
    stats_path, _, _ = compute_or_reuse(
        ds,
        StatisticsRequest(train_period.start, train_period.end, config.dt_hours),
        workdir / "stats",
        progress=progress and jax.process_index() == 0,
    )
    with xr.open_dataset(stats_path) as stats_ds:
        norm = normalisation_stats(stats_ds.load(), layout)

    process = dict(process_index=jax.process_index(), process_count=jax.process_count())
    train_source = SampleSource(
        ds,
        layout,
        train_period,
        dt_hours=config.dt_hours,
        n_target_steps=config.rollout_steps,
        progress=progress,
    )
    augmentation = Augmentation.for_source(config.augment, train_source, ds)
    val_source = (
        SampleSource(
            ds, layout, val_period, dt_hours=config.dt_hours, n_target_steps=config.rollout_steps
        )
        if val_period and config.validate_every > 0
        else None
    )

    lat = ds["lat"].values
    lat_weights = area_weights(ds["lat"]).values  # [lat], mean 1
    model = CheckpointModel.initialise(
        config, layout, norm, train_source.constants, lat=lat, lon=ds["lon"].values
    )
    params = model.params
    tx = make_optimizer(config.optimizer, config.steps, params, config.freeze)
    upper_w, surface_w = channel_weights(layout, config.loss)
    loss_arrays = dict(
        upper_scale=jnp.asarray(norm.upper_diff_std),
        surface_scale=jnp.asarray(norm.surface_diff_std),
        lat_weights=jnp.asarray(lat_weights, jnp.float32),
        upper_weights=jnp.asarray(upper_w),
        surface_weights=jnp.asarray(surface_w),
    )
    settings = StepSettings(
        config.rollout_steps,
        config.loss.surface_weight,
        config.optimizer.ema_decay,
        config.nan_policy == "skip",
        squared_error=config.loss.kind == "mse",
    )

    store = CheckpointStore(workdir / "checkpoints", keep=config.keep_checkpoints)
    # The EMA starts as a copy: one buffer in two places of the state cannot be donated.
    state = TrainState(
        params, tx.init(params), _copy(params) if config.optimizer.ema_decay > 0 else None
    )
    state_shardings = sharding.tree_shardings(mesh, state)
    start_step = 0
    if store.latest_step() is not None:
        # The settings first: another run's arrays would not even fit this one's tree.
        _check_same_run(store.read_meta(), config, workdir)
        abstract = model.abstract_arrays(sharding.replicated(mesh))
        abstract["state"] = jax.tree.map(
            lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
            abstract["state"],
            state_shardings,
        )
        arrays, meta = store.restore(abstract)
        if store.set_aside_damaged() and progress and jax.process_index() == 0:
            print(f"resuming from step {meta['step']}, the newest good checkpoint", flush=True)
        state = TrainState(*arrays["state"])
        start_step = int(meta["step"])
    elif config.warm_start:
        state = state._replace(params=model.warm_start_from(config.warm_start))
        if state.ema_params is not None:
            state = state._replace(ema_params=_copy(state.params))
    state = jax.device_put(state, state_shardings)

    fixed_order = (n_shards, state_shardings.params) if config.fixed_order_gradients else None
    train_step = jax.jit(
        make_train_step(model.advance, tx, loss_arrays, settings, fixed_order),
        out_shardings=(state_shardings, None),
        donate_argnums=(0,),
    )
    eval_step = jax.jit(make_eval_step(model.advance, loss_arrays, settings))
    stream = BatchStream(
        train_source,
        config.batch_size,
        seed=config.seed,
        start_step=start_step,
        augmentation=augmentation,
        **process,
    )
    base_key = jax.random.key(config.seed)

    metrics_path = workdir / "metrics.jsonl"
    metrics_log.truncate_after(metrics_path, start_step)
    end_step = config.steps
    with stop_requested() as preempted:
        bar = tqdm(
            total=config.steps,
            initial=start_step,
            desc="training",
            unit="step",
            disable=not progress or jax.process_index() != 0,
        )
        skipped, last = 0, {}
        t_start, samples = time.perf_counter(), 0
        step = start_step
        batches = iter(stream)
        try:
            while step < end_step:
                batch = next(batches)
                batch = _to_global(mesh, batch)
                state, out = train_step(state, batch, jax.random.fold_in(base_key, step))
                step += 1
                if step == start_step + 1:  # leave compilation out of the throughput
                    out["loss"].block_until_ready()
                    t_start, samples = time.perf_counter(), 0
                else:
                    samples += config.batch_size
                if not bool(out["finite"]):
                    if config.nan_policy == "stop":
                        store.wait()
                        kept = (
                            f"The last good checkpoint is step {store.latest_step()} in "
                            f"{store.directory}."
                            if store.latest_step() is not None
                            else "No checkpoint had been saved yet."
                        )
                        raise NonFiniteLoss(
                            f"step {step}: the loss or gradients became NaN/Inf (loss "
                            f"{float(out['loss'])}); stopped. {kept} Try a lower learning "
                            "rate, or nan_policy=skip to skip such steps"
                        )
                    skipped += 1
                rate = samples / max(time.perf_counter() - t_start, 1e-9)
                last = {
                    "step": step,
                    "loss": float(out["loss"]),
                    "grad_norm": float(out["grad_norm"]),
                    "samples_per_s": rate,
                    "skipped_steps": skipped,
                }
                validation_loss = None
                if (
                    val_source is not None
                    and config.validate_every > 0
                    and (step % config.validate_every == 0 or step == end_step)
                ):
                    scores = _validate(
                        eval_step, state, val_source, config, layout, lat_weights, mesh
                    )
                    validation_loss = scores["validation_loss"]
                    last.update(scores)
                if jax.process_index() == 0:
                    metrics_log.append(metrics_path, last)
                bar.set_postfix(loss=f"{last['loss']:.4f}", samples_s=f"{rate:.2f}")
                bar.update()
                if step % config.checkpoint_every == 0 or step == end_step or preempted.is_set():
                    store.save(
                        step,
                        {"state": state, **model.static_arrays()},
                        model.metadata(step, config),
                        validation_loss,
                    )
                if preempted.is_set():
                    bar.write(f"stop requested: saved step {step}; run the same command to resume")
                    break
        finally:
            bar.close()
            store.wait()
            store.close()
    checksum = parameter_checksum(state.params)
    summary = {
        **last,
        "final_step": step,
        "parameter_checksum": checksum,
        "peak_memory_gib": peak_memory_gib(),
        "wall_s": time.perf_counter() - t_start,
    }
    if jax.process_index() == 0:
        (workdir / "summary.json").write_text(json.dumps(summary, indent=2))
    return TrainResult(step, checksum, summary, preempted.signum)


def _validate(eval_step, state, source, config, layout, lat_weights, mesh) -> dict:
    params = state.ema_params if state.ema_params is not None else state.params
    stream = BatchStream(
        source,
        min(config.batch_size, len(source)),
        shuffle=False,
        process_index=jax.process_index(),
        process_count=jax.process_count(),
    )
    n_batches = min(config.validation_batches, stream.steps_per_epoch)
    # Evenly spaced through the period, the same every time.
    steps = np.linspace(0, stream.steps_per_epoch - 1, n_batches).astype(int)
    model_rmse = RmseAccumulator(layout, lat_weights)
    persistence_rmse = RmseAccumulator(layout, lat_weights)
    losses = []
    for s in steps:
        local = stream.batch(int(s))
        loss, err_upper, err_surface = eval_step(params, _to_global(mesh, local))
        losses.append(float(loss))
        model_rmse.add(_gather(err_upper), _gather(err_surface))
        persistence_rmse.add(
            local.inputs_upper - local.targets_upper[:, 0],
            local.inputs_surface - local.targets_surface[:, 0],
        )
    return {
        "validation_loss": float(np.mean(losses)),
        **model_rmse.rmse("val_rmse_"),
        **persistence_rmse.rmse("val_persistence_rmse_"),
    }


def _to_global(mesh, batch):
    arrays = batch._replace(constants=None, input_time=None)
    global_arrays = [
        sharding.global_batch(mesh, np.asarray(x)) if x is not None else None for x in arrays
    ]
    return batch._replace(
        **{name: value for name, value in zip(batch._fields, global_arrays) if value is not None},
        constants=jnp.asarray(batch.constants),
        input_time=jnp.asarray(batch.input_time),
    )


def _gather(x):
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)


def _check_same_run(meta: dict, config: TrainConfig, workdir: Path) -> None:
    if "train_config" not in meta:
        raise UserError(f"{workdir}: holds checkpoints that are not of `stmodel train`")
    try:  # defaults filled in, as this version reads it
        saved = TrainConfig.from_dict(meta["train_config"]).to_dict()
    except UserError:
        saved = meta["train_config"]
    mine = config.to_dict()
    differs = {k for k in set(mine) | set(saved) if k != "steps" and mine.get(k) != saved.get(k)}
    if differs:
        raise UserError(
            f"{workdir}: holds a run with different settings ({', '.join(sorted(differs))}); "
            "use a new --workdir, or the same settings to resume"
        )


def _copy(tree):
    return jax.tree.map(lambda x: jnp.array(x, copy=True), tree)


def _whole(ds) -> SplitPeriod:
    t = ds["time"].values
    return SplitPeriod(str(t[0]), str(t[-1]))


def peak_memory_gib() -> float:
    """Peak device memory where the backend reports it, else the process's peak RSS."""
    stats = jax.local_devices()[0].memory_stats() or {}
    if "peak_bytes_in_use" in stats:
        return stats["peak_bytes_in_use"] / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
