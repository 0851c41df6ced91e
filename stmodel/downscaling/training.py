"""`stmodel downscale train`: the downscaling task on the training loop. It fine-tunes
the pretrained backbone to map coarse fields to fine fields over a region.

The loop (stmodel.training.loop) brings what every task shares: frozen
parameters, EMA, sharding over a mesh, the NaN policy, checkpoints that keep the
last few and the best by validation loss, and exact resume: the batch at step s
depends only on (seed, s), so a run killed at any point resumes exactly with the
same command.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from stmodel.atomic_files import make_folder
from stmodel.checkpoints.global_model import CheckpointModel
from stmodel.checkpoints.store import parameter_checksum
from stmodel.data.layout import VariableLayout
from stmodel.data.pipeline import BatchStream, SplitPeriod, split_periods
from stmodel.downscaling.checkpoint import (
    CHECKPOINT_FORMAT,
    DownscalingCheckpoint,
    add_lora,
    build_model,
    frozen_parameter_names,
)
from stmodel.downscaling.config import DownscaleConfig
from stmodel.downscaling.data import PairBatch, PairReader, RegionalPair, open_pair
from stmodel.downscaling.network import DownscaleNetworkConfig, DownscaleStats
from stmodel.downscaling.region import RegionBox
from stmodel.downscaling.transfer import transfer_pretrained
from stmodel.errors import Interrupted, UserError
from stmodel.evaluation.area_weights import area_weights
from stmodel.model.parameter_names import parameter_names
from stmodel.models import resolve_checkpoint
from stmodel.training import loop, workdir_lock
from stmodel.training.task import LoopSettings

STATISTICS_CHUNK = 64  # samples read at a time when computing statistics


@dataclasses.dataclass(frozen=True)
class TrainingStatistics:
    stats: DownscaleStats
    mean_residual_upper: np.ndarray  # [level, lat, lon, var]: fine - bilinear
    mean_residual_surface: np.ndarray  # [lat, lon, var]


def _same_variables(a: VariableLayout, b: VariableLayout) -> bool:
    return (a.upper_air, tuple(a.levels), a.surface) == (b.upper_air, tuple(b.levels), b.surface)


def training_statistics(
    reader: PairReader, pretrained: CheckpointModel | None
) -> TrainingStatistics:
    """Input normalisation, residual scale and the bilinear mean residual of the training period.

    Inputs are normalised with the pretrained model's statistics when the variables and
    levels are the same (the reused embedding expects them), else with the fine data's.
    The residual scale is the root mean square of fine truth minus the interpolated
    coarse field, per channel, so the network's targets have unit size.
    """
    bilinear = reader.pair.interpolator("bilinear")
    sums = {}

    def add(name, value):
        sums[name] = sums.get(name, 0.0) + value

    n = len(reader)
    for start in range(0, n, STATISTICS_CHUNK):
        batch = reader.read(np.arange(start, min(start + STATISTICS_CHUNK, n)))
        for kind, fine, interpolated, coarse in (
            (
                "upper",
                batch.fine_upper,
                reader.region(batch.interpolated_upper),
                batch.coarse_upper,
            ),
            (
                "surface",
                batch.fine_surface,
                reader.region(batch.interpolated_surface),
                batch.coarse_surface,
            ),
        ):
            fine = fine.astype(np.float64)
            spatial = tuple(range(fine.ndim - 3, fine.ndim - 1))  # lat, lon
            pooled = (0,) + spatial
            add(f"{kind}_sum", fine.sum(axis=pooled))
            add(f"{kind}_square", (fine**2).sum(axis=pooled))
            add(f"{kind}_residual_square", ((fine - interpolated) ** 2).sum(axis=pooled))
            add(f"{kind}_bilinear_residual", (fine - bilinear.channels_last(coarse)).sum(axis=0))
            add(f"{kind}_count", fine.shape[0] * fine.shape[spatial[0]] * fine.shape[spatial[1]])
    result = {}
    for kind in ("upper", "surface"):
        count = sums[f"{kind}_count"]
        mean = sums[f"{kind}_sum"] / count
        std = np.sqrt(np.maximum(sums[f"{kind}_square"] / count - mean**2, 0.0))
        std = np.where(std > 0, std, 1.0)
        residual = np.sqrt(sums[f"{kind}_residual_square"] / count)
        # A channel the interpolation already gets exactly right keeps a tiny scale.
        residual = np.where(residual > 1e-6 * std, residual, 1e-6 * std)
        result[kind] = (mean, std, residual, sums[f"{kind}_bilinear_residual"] / n)
    layout = reader.fine_source.layout
    if pretrained is not None and _same_variables(layout, pretrained.layout):
        norm = pretrained.norm
        inputs = (norm.upper_mean, norm.upper_std, norm.surface_mean, norm.surface_std)
    else:
        inputs = (
            result["upper"][0],
            result["upper"][1],
            result["surface"][0],
            result["surface"][1],
        )
    stats = DownscaleStats(
        *(np.asarray(x, np.float32) for x in (*inputs, result["upper"][2], result["surface"][2]))
    )
    return TrainingStatistics(
        stats, result["upper"][3].astype(np.float32), result["surface"][3].astype(np.float32)
    )


def resolve_periods(
    pair: RegionalPair, config: DownscaleConfig
) -> tuple[SplitPeriod, SplitPeriod | None]:
    periods = split_periods(pair.fine)
    if config.train_period:
        train = SplitPeriod.parse(config.train_period)
    elif "train" in periods:
        train = periods["train"]
    else:
        times = pair.fine["time"].values
        train = SplitPeriod(str(times[0]), str(times[-1]))
    if config.validation_period:
        validation = SplitPeriod.parse(config.validation_period)
    else:
        validation = periods.get("validation") if not config.train_period else None
    return train, validation


def _provenance_differences(meta: dict, box: RegionBox, provenance: dict) -> list[str]:
    """What of the region, the data and the pretrained model differs from the saved run."""
    saved = meta.get("provenance", {})
    differs = (
        [] if meta.get("region") == box.text() else [f"region {meta.get('region')} -> {box.text()}"]
    )
    if saved.get("train_period") != provenance["train_period"]:
        differs.append(f"train period {saved.get('train_period')} -> {provenance['train_period']}")
    for key in ("coarse", "fine", "static"):  # by file name: a resume may run from elsewhere
        before, now = (
            [Path(p).name for p in paths or ()] for paths in (saved.get(key), provenance[key])
        )
        if before != now:
            differs.append(f"--{key} {', '.join(before)} -> {', '.join(now)}")
    before = (saved.get("pretrained") or {}).get("parameter_checksum")
    if before != provenance["pretrained"]["parameter_checksum"]:
        differs.append("the --pretrained checkpoint's parameters")
    return differs


BATCH_FIELDS = (
    "interpolated_upper",
    "interpolated_surface",
    "time",
    "fine_upper",
    "fine_surface",
)


class DownscalingTask:
    description = "downscale training"
    checkpoint_format = CHECKPOINT_FORMAT
    batch_axes = dict.fromkeys(BATCH_FIELDS, 0)  # every field is per sample

    def __init__(
        self,
        config: DownscaleConfig,
        checkpoint: DownscalingCheckpoint,
        reader: PairReader,
        validation: PairReader | None,
        lat_weights: np.ndarray,
        workdir: Path,
        summary: dict,
    ):
        self.config, self.checkpoint, self.workdir = config, checkpoint, workdir
        self.reader, self.validation = reader, validation
        self.params = checkpoint.params
        self.frozen = frozen_parameter_names(checkpoint.params, config.mode)
        self.batch_size = min(config.batch_size, len(reader))
        self.stream = BatchStream(
            reader.fine_source,
            self.batch_size,
            seed=config.seed,
            process_index=jax.process_index(),
            process_count=jax.process_count(),
        )
        self.lat_weights = jnp.asarray(lat_weights, jnp.float32)  # [lat], mean 1
        self.static = jnp.asarray(checkpoint.static)
        self._summary = summary
        self._validation_loss = jax.jit(self.loss)

    def loss(self, params, batch: dict, key=None) -> jnp.ndarray:
        """Area-weighted mean squared error of the normalised residual, every channel alike."""
        model = nnx.merge(self.checkpoint.graphdef, params, self.checkpoint.rest, copy=True)
        predicted = model.predict_residual(
            batch["interpolated_upper"], batch["interpolated_surface"], batch["time"], self.static
        )
        targets = model.residual_targets(
            batch["interpolated_upper"],
            batch["interpolated_surface"],
            batch["fine_upper"],
            batch["fine_surface"],
        )
        per_channel = []
        # upper [batch, level, lat, lon, var] -> [level, var];
        # surface [batch, lat, lon, var] -> [var]
        for p, t, lat_axis in ((predicted[0], targets[0], 2), (predicted[1], targets[1], 1)):
            if p.size == 0:
                continue
            shape = [1] * p.ndim
            shape[lat_axis] = -1
            squared = (p - t) ** 2 * self.lat_weights.reshape(shape)
            axes = (0, lat_axis, lat_axis + 1)
            per_channel.append(squared.mean(axis=axes).reshape(-1))
        return jnp.concatenate(per_channel).mean()

    def batch(self, step: int) -> dict:
        return _fields(self.reader.read(self.stream.local_sample_ids(step)))

    def validate(self, params, to_device) -> dict:
        reader = self.validation
        if reader is None:
            return {}
        size = min(self.config.batch_size, len(reader))
        n_batches = min(self.config.validation_batches, len(reader) // size)
        starts = np.linspace(0, len(reader) - size, max(n_batches, 1)).astype(int)
        losses = [
            float(
                self._validation_loss(
                    params, to_device(_fields(reader.read(np.arange(s, s + size))))
                )
            )
            for s in starts
        ]
        return {"validation_loss": float(np.mean(losses))}

    def static_arrays(self) -> dict:
        return self.checkpoint.static_arrays()

    def metadata(self) -> dict:
        return self.checkpoint.metadata()

    def check_resumable(self, meta: dict) -> None:
        differs = self.config.differences(DownscaleConfig.from_dict(meta["config"]))
        differs += _provenance_differences(meta, self.checkpoint.box, self.checkpoint.provenance)
        if differs:
            raise UserError(
                f"{self.workdir}: holds a downscaling run with different settings "
                f"({', '.join(differs)}); use a new --workdir, or the same settings "
                "to resume"
            )

    def summary(self, params) -> dict:
        return {
            "mode": self.config.mode,
            "init": self.config.init,
            "n_parameters": self.checkpoint.n_parameters,
            "n_trainable": _count_trainable(params, self.config.mode),
            "train_samples": len(self.reader),
            **self._summary,
        }


def _fields(batch: PairBatch) -> dict:
    return {name: getattr(batch, name) for name in BATCH_FIELDS}


def train_downscaler(
    config: DownscaleConfig,
    pretrained_dir: str | Path,
    coarse_paths: Sequence[str | Path],
    fine_paths: Sequence[str | Path],
    box: RegionBox,
    workdir: str | Path,
    *,
    static_paths: Sequence[str] = (),
    progress: bool = True,
    stop_after: int | None = None,
    command: str | None = None,
    mesh_shape: tuple[int, int] | None = None,
) -> dict:
    """Fine-tune (or resume) into workdir; returns the run's summary (also summary.json).

    `command` (the command line, when run from the CLI) is recorded in the summary;
    `wall_s` there covers this invocation's training, which began at `start_step`.
    """
    workdir = Path(workdir)
    pretrained = CheckpointModel.load(Path(pretrained_dir))
    patch = tuple(config.patch or pretrained.model_config.patch)
    halo = (config.halo_tokens * patch[1], config.halo_tokens * patch[2])
    pair = open_pair(coarse_paths, fine_paths, box, static_paths, halo=halo)
    train_period, validation_period = resolve_periods(pair, config)
    reader = PairReader(pair, train_period, config.interpolation)
    validation = (
        PairReader(pair, validation_period, config.interpolation) if validation_period else None
    )
    statistics = training_statistics(reader, pretrained)
    network_config = DownscaleNetworkConfig.from_backbone(
        pretrained.model_config,
        pair.layout,
        (len(pair.fine_lat), len(pair.fine_lon)),
        patch=patch,
        halo=halo,
    )
    model = build_model(network_config, statistics.stats, dataclasses.replace(config, mode="full"))
    report = None
    if config.init == "pretrained":
        _, params, _ = nnx.split(model, nnx.Param, ...)
        params, report = transfer_pretrained(
            params,
            pretrained.params,
            network_config,
            pair.network_lat,
            pretrained.model_config,
            pretrained.lat,
        )
        nnx.update(model, params)
    if config.mode == "lora":
        add_lora(model, config)
    static = pair.static()
    provenance = {
        "pretrained": {
            "directory": str(resolve_checkpoint(pretrained_dir).resolve()),
            "step": pretrained.step,
            "parameter_checksum": parameter_checksum(pretrained.params),
            "model_config": pretrained.model_config.to_dict(),
        },
        "transfer": report.to_dict() if report else None,
        "coarse": [str(p) for p in coarse_paths],
        "fine": [str(p) for p in fine_paths],
        "static": [str(p) for p in static_paths],
        "train_period": f"{train_period.start}/{train_period.end}",
        "validation_period": (
            f"{validation_period.start}/{validation_period.end}" if validation_period else None
        ),
        "train_samples": len(reader),
    }
    checkpoint = DownscalingCheckpoint.from_model(
        model,
        config=config,
        network_config=network_config,
        layout=pair.layout,
        box=box,
        grids={
            "fine_lat": pair.fine_lat,
            "fine_lon": pair.fine_lon,
            "network_lat": pair.network_lat,
            "network_lon": pair.network_lon,
            "coarse_lat": pair.coarse["lat"].values,
            "coarse_lon": pair.coarse["lon"].values,
        },
        static=static,
        stats=statistics.stats,
        mean_residual_upper=statistics.mean_residual_upper,
        mean_residual_surface=statistics.mean_residual_surface,
        provenance=provenance,
    )

    make_folder(workdir, "--workdir")
    with workdir_lock.for_run(workdir):
        task = DownscalingTask(
            config,
            checkpoint,
            reader,
            validation,
            area_weights(pair.fine["lat"]).values,
            workdir,
            {"command": command, "transfer": report.to_dict() if report else None},
        )
        result = loop.run(
            task,
            LoopSettings(
                steps=config.steps,
                batch_size=task.batch_size,
                seed=config.seed,
                optimizer=config.optimizer,
                checkpoint_every=config.checkpoint_every,
                keep_checkpoints=config.keep_checkpoints,
                validate_every=config.validate_every if validation is not None else 0,
                nan_policy=config.nan_policy,
                mesh=(1, 1),
            ),
            workdir,
            mesh_shape=mesh_shape,
            progress=progress,
            stop_after=stop_after,
        )
    if result.stopped_by:
        raise Interrupted(
            result.stopped_by,
            f"downscale training stopped at step {result.step}, saved in {workdir}; run the "
            "same command to resume",
        )
    return result.metrics


def _count_trainable(params, mode: str) -> int:
    frozen = set(frozen_parameter_names(params, mode))
    return int(
        sum(
            np.size(leaf)
            for name, leaf in zip(parameter_names(params), jax.tree.leaves(params))
            if name not in frozen
        )
    )
