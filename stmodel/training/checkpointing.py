"""Checkpoints with orbax: arrays (parameters, optimiser, EMA, statistics, constants)
and JSON metadata (step, configs, layout, grid), so a checkpoint alone can forecast.

Orbax writes each checkpoint into a temporary directory and renames it when
complete, so a run killed during a save leaves the previous checkpoint as the
newest restorable one.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers

from stmodel.errors import UserError

VALIDATION_METRIC = "validation_loss"


class CheckpointStore:
    """Keeps the last `keep` checkpoints and the best by validation loss."""

    def __init__(self, directory: Path, keep: int = 3, async_save: bool = True,
                 read_only: bool = False):
        self.directory = Path(directory).resolve()
        policy = checkpoint_managers.AnyPreservationPolicy([
            checkpoint_managers.LatestN(n=keep),
            checkpoint_managers.BestN(get_metric_fn=lambda m: m[VALIDATION_METRIC],
                                      reverse=True, n=1, keep_checkpoints_without_metrics=False),
        ])
        # Readers open the manager without a preservation policy (so it deletes
        # nothing) rather than read_only, which orbax logs warnings about.
        options = ocp.CheckpointManagerOptions(
            preservation_policy=None if read_only else policy,
            enable_async_checkpointing=async_save, create=not read_only)
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def save(self, step: int, arrays: Any, meta: dict, validation_loss: float | None = None,
             force: bool = False) -> None:
        metrics = None if validation_loss is None else {VALIDATION_METRIC: validation_loss}
        self._manager.save(step, args=ocp.args.Composite(
            arrays=ocp.args.StandardSave(arrays), meta=ocp.args.JsonSave(meta)),
            metrics=metrics, force=force)

    def restore(self, abstract_arrays: Any, step: int | None = None) -> tuple[Any, dict]:
        step = self._resolve(step)
        restored = self._manager.restore(step, args=ocp.args.Composite(
            arrays=ocp.args.StandardRestore(abstract_arrays), meta=ocp.args.JsonRestore()))
        return restored["arrays"], restored["meta"]

    def read_meta(self, step: int | None = None) -> dict:
        step = self._resolve(step)
        return self._manager.restore(step, args=ocp.args.Composite(
            meta=ocp.args.JsonRestore()))["meta"]

    def wait(self) -> None:
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.close()

    def _resolve(self, step: int | None) -> int:
        step = self.latest_step() if step is None else step
        if step is None:
            raise UserError(f"{self.directory}: no checkpoint found (is this a training workdir "
                            "or its checkpoints/ folder?)")
        return step


def open_for_reading(path: Path) -> CheckpointStore:
    """A training workdir or its checkpoints/ directory."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: no such checkpoint directory")
    if (path / "checkpoints").is_dir():
        path = path / "checkpoints"
    return CheckpointStore(path, read_only=True, async_save=False)


def parameter_checksum(params: Any) -> str:
    """SHA-256 over every parameter's path, shape, dtype and bytes, in path order."""
    digest = hashlib.sha256()
    leaves = jax.tree_util.tree_flatten_with_path(params)[0]
    for path, leaf in sorted(leaves, key=lambda item: jax.tree_util.keystr(item[0])):
        value = np.asarray(_fully_replicated(leaf))
        digest.update(jax.tree_util.keystr(path).encode())
        digest.update(str((value.shape, value.dtype.str)).encode())
        digest.update(np.ascontiguousarray(value).tobytes())
    return digest.hexdigest()


def _fully_replicated(leaf):
    if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
        from jax.experimental import multihost_utils
        return multihost_utils.process_allgather(leaf, tiled=True)
    return leaf
