"""`stmodel train`: the global forecasting task on the training loop.

One step of the network advances every variable by dt_hours; the training method
(stmodel.training.methods: deterministic or ensemble CRPS) scores 1..rollout_steps
autoregressive steps against the truth.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import xarray as xr

from stmodel.atomic_files import make_folder
from stmodel.checkpoints.global_model import CHECKPOINT_FORMAT, CheckpointModel
from stmodel.checkpoints.store import open_for_reading
from stmodel.data import validation as data_validation
from stmodel.data.layout import Batch, NormalisationStats, VariableLayout
from stmodel.data.pipeline import (
    Augmentation,
    BatchStream,
    SampleSource,
    SplitPeriod,
    default_layout,
    split_periods,
)
from stmodel.data.readers import open_canonical, source_files
from stmodel.data.statistics import (
    STATS_FILE,
    StatisticsRequest,
    compute_or_reuse,
    fingerprint_differences,
    normalisation_stats,
    only_files_differ,
    saved_fingerprint,
)
from stmodel.errors import DataError, UserError
from stmodel.evaluation.area_weights import area_weights
from stmodel.evaluation.ensemble_metrics import unbiased_spread_skill_ratio
from stmodel.forecasting.forecast import describe_axis
from stmodel.model.config import ModelConfig
from stmodel.training import loop, workdir_lock
from stmodel.training.config import LossConfig, TrainConfig
from stmodel.training.loss import channel_weights
from stmodel.training.methods import METHODS
from stmodel.training.task import LoopSettings
from stmodel.training.validation import RmseAccumulator

logger = logging.getLogger(__name__)

# The seed of validation's noise and stochastic depth: every validation of every run alike.
VALIDATION_SEED = 0
# Per-sample fields are split over the devices; the constants and the (unused) input
# times are each process's own.
BATCH_AXES = Batch(0, 0, 0, 0, None, None)


def model_config_for(
    config: TrainConfig, layout: VariableLayout, grid: tuple[int, int]
) -> ModelConfig:
    """The training preset's network, sized to the data."""
    return ModelConfig.preset(
        config.model_preset,
        **{
            **dict(config.model_overrides),
            "grid": grid,
            "n_levels": len(layout.levels),
            "n_upper_vars": len(layout.upper_air),
            "n_surface_vars": len(layout.surface),
            "n_constant_fields": len(layout.constants),
        },
    )


class ForecastingTask:
    description = "training"
    checkpoint_format = CHECKPOINT_FORMAT
    batch_axes = BATCH_AXES

    def __init__(
        self, config: TrainConfig, data_paths: Sequence[str | Path], workdir: Path, progress: bool
    ):
        self.config, self.workdir = config, workdir
        ds = open_canonical(data_paths)
        data_validation.validate(ds)
        if "level" not in ds.dims:
            raise DataError(
                f"{', '.join(source_files(ds))}: no pressure levels; the global model needs "
                "upper-air variables on levels (geopotential, temperature, winds), found only "
                f"{', '.join(map(str, ds.data_vars))}. Surface fields alone suit "
                "`stmodel downscale`"
            )
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
        self.layout = layout = default_layout(ds)
        request = StatisticsRequest(train_period.start, train_period.end, config.dt_hours)
        # Before the statistics are written: a refused resume leaves the workdir as it was.
        if self._resumes_on_moved_files(ds, request):
            stats_path = workdir / "stats" / STATS_FILE  # the run's own normalisation
        else:
            stats_path, _, _ = compute_or_reuse(
                ds, request, workdir / "stats", progress=progress and jax.process_index() == 0
            )
        with xr.open_dataset(stats_path) as stats_ds:
            norm = normalisation_stats(stats_ds.load(), layout)
        source = SampleSource(
            ds,
            layout,
            train_period,
            dt_hours=config.dt_hours,
            n_target_steps=config.rollout_steps,
            progress=progress,
        )
        self.validation_source = (
            SampleSource(
                ds,
                layout,
                val_period,
                dt_hours=config.dt_hours,
                n_target_steps=config.rollout_steps,
            )
            if val_period and config.validate_every > 0
            else None
        )
        self.lat_weights = area_weights(ds["lat"]).values  # [lat], mean 1
        self.model = CheckpointModel.initialise(
            model_config_for(config, layout, (ds.sizes["lat"], ds.sizes["lon"])),
            layout,
            norm,
            source.constants,
            lat=ds["lat"].values,
            lon=ds["lon"].values,
            dt_hours=config.dt_hours,
            seed=config.seed,
            train_config=config.to_dict(),
        )
        self.params = self.model.params
        if config.warm_start:
            self.params = self.model.warm_start_from(config.warm_start)
        self.frozen = config.freeze
        process = dict(process_index=jax.process_index(), process_count=jax.process_count())
        self.stream = BatchStream(
            source,
            config.batch_size,
            seed=config.seed,
            augmentation=Augmentation.for_source(config.augment, source, ds),
            **process,
        )
        self.loss_arrays = method_loss_arrays(norm, self.lat_weights, layout, config.loss)
        self.method = training_method(config, self.model.model_config, self.loss_arrays)
        self._eval_step = jax.jit(self._evaluate)

    def _resumes_on_moved_files(self, ds: xr.Dataset, request: StatisticsRequest) -> bool:
        """Whether this run resumes the workdir's on the same variables, levels and grid
        from files whose paths, sizes or times of change differ (copied, moved, touched):
        it then keeps the run's own statistics rather than replacing them.

        UserError where the workdir holds checkpoints of a run this one cannot resume:
        another command, other settings, or data of other variables, levels or grid, or
        statistics of another training period."""
        store_dir = self.workdir / "checkpoints"
        if not store_dir.is_dir():
            return False
        store = open_for_reading(store_dir)
        try:
            if store.latest_step() is None:
                return False
            meta = store.read_meta()
            if meta.get("format") != self.checkpoint_format:
                return False  # the training loop refuses it, naming the format
            self.check_resumable(meta)
            static, _ = store.restore({"static": None})
        finally:
            store.close()
        where = ", ".join(source_files(ds))
        differs = _data_differences(meta, static["static"], self.layout, ds)
        if differs:
            raise UserError(
                f"{self.workdir}: holds a run on data of other variables, levels or grid than "
                f"this run's data {where} ({'; '.join(differs)}); use a new --workdir, or the "
                "data it was trained on to resume"
            )
        saved = saved_fingerprint(self.workdir / "stats")
        mine = request.fingerprint(ds, [v for v in ds.data_vars if "time" in ds[v].dims])
        if saved is None or saved == mine:
            return False
        if only_files_differ(saved, mine):
            logger.info(
                "%s: resuming with the run's own statistics; the data files differ from "
                "those they were computed from (%s)",
                self.workdir,
                fingerprint_differences(saved, mine),
            )
            return True
        raise UserError(
            f"{self.workdir}: its statistics (stats/{STATS_FILE}) were computed from other "
            f"data than this run's {where} ({fingerprint_differences(saved, mine)}); "
            "resume with the settings and data it was trained on, or use a new --workdir"
        )

    def loss(self, params, batch: Batch, key):
        return self.method.loss(self.model.advance, params, batch, key, deterministic=False)[0]

    def _evaluate(self, params, batch: Batch, batch_index):
        """Loss, the one-step error of the (ensemble-mean) forecast and the members' variance
        (ddof 1; zero for one member), physical units, of a validation batch. Its noise and
        stochastic depth come from a key fixed per validation batch: every validation
        scores alike, and each batch's members draw other noise (drawn once for all, a few
        vectors would decide every batch's spread)."""
        key = jax.random.fold_in(jax.random.key(VALIDATION_SEED), batch_index)
        loss, (upper, surface) = self.method.loss(
            self.model.advance, params, batch, key, deterministic=True
        )  # upper [batch, member, step, level, lat, lon, var]
        upper, surface = upper[:, :, 0], surface[:, :, 0]  # the first step
        members = upper.shape[1]
        variance = (
            (upper.var(axis=1, ddof=1), surface.var(axis=1, ddof=1))
            if members > 1
            else (jnp.zeros_like(upper[:, 0]), jnp.zeros_like(surface[:, 0]))
        )
        return (
            loss,
            upper.mean(axis=1) - batch.targets_upper[:, 0],
            surface.mean(axis=1) - batch.targets_surface[:, 0],
            *variance,
        )

    def batch(self, step: int) -> Batch:
        return self.stream.batch(step)

    def validate(self, params, to_device) -> dict:
        source, config = self.validation_source, self.config
        if source is None:
            return {}
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
        model_rmse = RmseAccumulator(self.layout, self.lat_weights)
        persistence_rmse = RmseAccumulator(self.layout, self.lat_weights)
        spread = RmseAccumulator(self.layout, self.lat_weights)  # of sqrt(variance)
        losses = []
        for s in steps:
            local = stream.batch(int(s))
            loss, err_upper, err_surface, var_upper, var_surface = self._eval_step(
                params, to_device(local), int(s)
            )
            losses.append(float(loss))
            model_rmse.add(_gather(err_upper), _gather(err_surface))
            spread.add(np.sqrt(_gather(var_upper)), np.sqrt(_gather(var_surface)))
            persistence_rmse.add(
                local.inputs_upper - local.targets_upper[:, 0],
                local.inputs_surface - local.targets_surface[:, 0],
            )
        scores = {
            "validation_loss": float(np.mean(losses)),
            **model_rmse.rmse("val_rmse_"),
            **persistence_rmse.rmse("val_persistence_rmse_"),
        }
        if self.method.members > 1:
            scores["val_crps"] = scores["validation_loss"]
            # Per field, the evaluation's unbiased spread-skill ratio from the RMSE of the
            # ensemble mean and the spread (root of the mean member variance). The spread
            # is reported too: the ratio is NaN where the members spread more than the
            # ensemble mean errs times sqrt(M), and the spread then says by how much.
            spreads, members = spread.rmse(""), self.method.members
            for name, rmse in model_rmse.rmse("").items():
                ratio = unbiased_spread_skill_ratio(spreads[name] ** 2, rmse**2, members)
                scores[f"val_ssr_{name}"] = float(ratio)
                scores[f"val_spread_{name}"] = float(spreads[name])
        return scores

    def static_arrays(self) -> dict:
        return self.model.static_arrays()

    def metadata(self) -> dict:
        return self.model.metadata(step=0)

    def check_resumable(self, meta: dict) -> None:
        try:  # defaults filled in, as this version reads it
            saved = TrainConfig.from_dict(meta["train_config"]).to_dict()
        except UserError:
            saved = meta["train_config"]
        mine = self.config.to_dict()
        differs = {
            k
            for k in set(mine) | set(saved)
            if k not in ("steps", "prefetch") and mine.get(k) != saved.get(k)
        }
        if differs:
            raise UserError(
                f"{self.workdir}: holds a run with different settings "
                f"({', '.join(sorted(differs))}); use a new --workdir, or the same settings "
                "to resume"
            )

    def summary(self, params) -> dict:
        return {}


def method_loss_arrays(
    norm: NormalisationStats, lat_weights: np.ndarray, layout: VariableLayout, loss: LossConfig
) -> dict:
    """The scales and weights the methods' losses take (weighted_error, ensemble_crps_loss),
    jax arrays: the per-channel diff_std, the [lat] area weights and the channel weights."""
    upper_w, surface_w = channel_weights(layout, loss)
    return dict(
        upper_scale=jnp.asarray(norm.upper_diff_std),
        surface_scale=jnp.asarray(norm.surface_diff_std),
        lat_weights=jnp.asarray(lat_weights, jnp.float32),
        upper_weights=jnp.asarray(upper_w),
        surface_weights=jnp.asarray(surface_w),
    )


def training_method(config: TrainConfig, model_config: ModelConfig, loss_arrays: dict):
    """The config's method (stmodel.training.methods), with the task's loss weights."""
    return METHODS[config.method.kind].from_config(config, model_config, loss_arrays)


def loop_settings(config: TrainConfig) -> LoopSettings:
    return LoopSettings(
        steps=config.steps,
        batch_size=config.batch_size,
        seed=config.seed,
        optimizer=config.optimizer,
        checkpoint_every=config.checkpoint_every,
        keep_checkpoints=config.keep_checkpoints,
        validate_every=config.validate_every,
        nan_policy=config.nan_policy,
        fixed_order_gradients=config.fixed_order_gradients,
        mesh=config.mesh,
        prefetch=config.prefetch,
    )


def train(
    config: TrainConfig,
    data_paths: Sequence[str | Path],
    workdir: Path,
    *,
    steps: int | None = None,
    mesh_shape: tuple[int, int] | None = None,
    progress: bool = True,
) -> loop.TrainResult:
    """Train (or resume) into workdir; `steps` overrides config.steps."""
    if steps is not None:
        config = dataclasses.replace(config, steps=steps)
    workdir = Path(workdir)
    make_folder(workdir, "--workdir")
    # Before the task: building it writes the workdir's statistics.
    with workdir_lock.for_run(workdir):
        task = ForecastingTask(config, data_paths, workdir, progress)
        return loop.run(
            task, loop_settings(config), workdir, mesh_shape=mesh_shape, progress=progress
        )


def _data_differences(
    meta: dict, static: dict, layout: VariableLayout, ds: xr.Dataset
) -> list[str]:
    """What differs between the data a checkpoint was trained on and `ds`, in words."""
    saved = VariableLayout.from_dict(meta["layout"])
    differs = []
    for field, what in (
        ("upper_air", "upper-air variables"),
        ("surface", "surface variables"),
        ("constants", "constant fields"),
        ("levels", "levels (hPa)"),
    ):
        had, have = getattr(saved, field), getattr(layout, field)
        if had != have:
            differs.append(
                f"{what}: the workdir's {', '.join(map(str, had)) or 'none'}, "
                f"the data's {', '.join(map(str, have)) or 'none'}"
            )
    for dim in ("lat", "lon"):
        had, have = np.asarray(static[dim], np.float64), np.asarray(ds[dim].values, np.float64)
        if had.shape != have.shape or not np.allclose(had, have, atol=1e-6):
            differs.append(
                f"{dim} grid: the workdir's {describe_axis(had)}, the data's {describe_axis(have)}"
            )
    return differs


def _gather(x):
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)


def _whole(ds) -> SplitPeriod:
    t = ds["time"].values
    return SplitPeriod(str(t[0]), str(t[-1]))
