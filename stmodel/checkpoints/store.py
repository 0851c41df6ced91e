"""Checkpoints with orbax: named items of arrays (parameters, optimiser state, EMA,
statistics and grid) and JSON metadata (step, configs, layout), so a checkpoint alone
can forecast, and inference reads the parameters without the optimiser state.

Orbax writes each checkpoint into a temporary directory and renames it when
complete, so a run killed during a save leaves the previous checkpoint as the
newest restorable one. Each step's metadata also holds a SHA-256 of every item,
checked on restore: a step damaged later (a truncated or altered file) is
reported in one line and the newest good step is used instead.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers

from stmodel.errors import UserError
from stmodel.model.parameter_names import named_arrays

logger = logging.getLogger(__name__)

VALIDATION_METRIC = "validation_loss"
CHECKSUM = "arrays_sha256"


class CheckpointStore:
    """Keeps the last `keep` checkpoints and the best by validation loss."""

    def __init__(
        self, directory: Path, keep: int = 3, async_save: bool = True, read_only: bool = False
    ):
        self.directory = Path(directory).resolve()
        policy = checkpoint_managers.AnyPreservationPolicy(
            [
                checkpoint_managers.LatestN(n=keep),
                checkpoint_managers.BestN(
                    get_metric_fn=lambda m: m[VALIDATION_METRIC],
                    reverse=True,
                    n=1,
                    keep_checkpoints_without_metrics=False,
                ),
            ]
        )
        # Readers open the manager without a preservation policy (so it deletes
        # nothing) rather than read_only, which orbax logs warnings about.
        options = ocp.CheckpointManagerOptions(
            preservation_policy=None if read_only else policy,
            enable_async_checkpointing=async_save,
            create=not read_only,
            # The temporary folders of a save cut short by SIGKILL.
            cleanup_tmp_directories=not read_only,
        )
        self._manager = ocp.CheckpointManager(self.directory, options=options)
        self.damaged: dict[int, str] = {}  # step -> what is wrong with it

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return list(self._manager.all_steps())

    def save(
        self,
        step: int,
        items: dict[str, Any],
        meta: dict,
        validation_loss: float | None = None,
        force: bool = False,
    ) -> None:
        """Save each item (a pytree of arrays) and the metadata as step `step`."""
        metrics = None if validation_loss is None else {VALIDATION_METRIC: validation_loss}
        meta = {**meta, CHECKSUM: {name: arrays_checksum(tree) for name, tree in items.items()}}
        saved = {name: ocp.args.StandardSave(tree) for name, tree in items.items()}
        self._manager.save(
            step,
            args=ocp.args.Composite(**saved, meta=ocp.args.JsonSave(meta)),
            metrics=metrics,
            force=force,
        )

    def restore(self, items: dict[str, Any], step: int | None = None) -> tuple[dict, dict]:
        """The named items and the metadata of `step`, or of the newest step that is whole
        and intact. `items` maps each item to read to its abstract tree (shapes, dtypes and
        shardings), or to None for the tree as it was saved (nested dicts of arrays), placed
        on this process's first device whatever mesh wrote it."""

        def read(s):
            wanted = {
                name: ocp.args.StandardRestore(self._as_saved(s, name) if tree is None else tree)
                for name, tree in items.items()
            }
            restored = self._manager.restore(
                s, args=ocp.args.Composite(**wanted, meta=ocp.args.JsonRestore())
            )
            expected = restored["meta"].get(CHECKSUM)
            # stmodel-checkpoint-1 summed another tree structure: not comparable here.
            expected = expected if isinstance(expected, dict) else {}
            for name in items:
                if name in expected and arrays_checksum(restored[name]) != expected[name]:
                    raise ValueError(f"its {name} do not match the checksum written with them")
            return {name: restored[name] for name in items}, restored["meta"]

        return self._first_good(step, read)

    def _as_saved(self, step: int, item: str) -> Any:
        """The abstract tree of a saved item (shapes and dtypes from its metadata) on this
        process's first device: orbax restores sharded arrays only into a given topology."""
        saved = ocp.StandardCheckpointHandler().metadata(self.directory / str(step) / item)
        device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
        return jax.tree.map(
            lambda leaf: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=device),
            getattr(saved, "tree", saved),
        )

    def differing_shapes(self, item: str, tree: Any) -> list[str]:
        """Names of the arrays of `item` in the newest step whose shapes are not `tree`'s
        (arrays of another run, not damage); [] where its metadata cannot be read, which
        restoring then reports as damage."""
        try:
            saved = named_arrays(self._as_saved(self.latest_step(), item))
        except Exception:  # orbax and tensorstore raise many kinds
            return []
        mine = named_arrays(tree)
        return sorted(
            name
            for name in set(saved) | set(mine)
            if name not in saved or name not in mine or saved[name].shape != np.shape(mine[name])
        )

    def read_meta(self, step: int | None = None) -> dict:
        """Metadata of `step`, or of the newest step whose metadata can be read."""

        def read(s):
            return self._manager.restore(s, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))[
                "meta"
            ]

        return self._first_good(step, read)

    def set_aside_damaged(self) -> list[Path]:
        """Rename damaged steps to damaged-STEP (kept for inspection, out of the way of new
        saves of the same step). Returns the new paths."""
        moved = []
        for step in sorted(self.damaged):
            source = self.directory / str(step)
            if source.is_dir():
                target = self.directory / f"damaged-{step}"
                n = 1
                while target.exists():
                    target, n = self.directory / f"damaged-{step}.{n}", n + 1
                source.rename(target)
                moved.append(target)
        if moved:
            self.reload()
        return moved

    def reload(self) -> None:
        """See steps that another store object added, removed or set aside."""
        self._manager.reload()

    def _first_good(self, step: int | None, read):
        if step is not None:
            if step not in self.all_steps():
                raise UserError(
                    f"{self.directory}: no checkpoint of step {step} "
                    f"(steps: {', '.join(map(str, self.all_steps())) or 'none'})"
                )
            try:
                return read(step)
            except Exception as error:  # orbax and tensorstore raise many kinds
                raise UserError(
                    f"{self.directory / str(step)}: damaged checkpoint ({_one_line(error)})"
                ) from None
        for candidate in sorted(self.all_steps(), reverse=True):
            if candidate in self.damaged:
                continue
            try:
                result = read(candidate)
            except Exception as error:  # orbax and tensorstore raise many kinds
                self.damaged[candidate] = _one_line(error)
                logger.warning(
                    "%s is damaged (%s); trying the step before it",
                    self.directory / str(candidate),
                    self.damaged[candidate],
                )
                continue
            return result
        self._resolve(None)  # no checkpoint at all: says so
        raise UserError(
            f"{self.directory}: every checkpoint is damaged ("
            + "; ".join(f"step {s}: {why}" for s, why in sorted(self.damaged.items()))
            + ")"
        )

    def wait(self) -> None:
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.close()

    def _resolve(self, step: int | None) -> int:
        step = self.latest_step() if step is None else step
        if step is None:
            raise UserError(
                f"{self.directory}: no checkpoint found (is this a training workdir "
                "or its checkpoints/ folder?)"
            )
        return step


def _one_line(error: Exception) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 200 else text[:197] + "..."


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


def arrays_checksum(arrays: Any) -> str:
    """SHA-256 over every leaf's dotted path name, shape, dtype and bytes, in name order.

    Dtypes are those a restore gives (JAX without x64 restores float64 as float32), and
    names ignore the container types (a tuple restores as a list), so that save and
    restore agree, with or without the tree to restore into.
    """
    digest = hashlib.sha256()
    for name, leaf in sorted(named_arrays(arrays).items()):
        value = np.asarray(_fully_replicated(leaf))
        dtype = jax.dtypes.canonicalize_dtype(value.dtype)
        value = value.astype(dtype) if value.dtype != dtype else value
        digest.update(name.encode())
        digest.update(str((value.shape, value.dtype.str)).encode())
        digest.update(np.ascontiguousarray(value).tobytes())
    return digest.hexdigest()


def _fully_replicated(leaf):
    if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
        from jax.experimental import multihost_utils

        return multihost_utils.process_allgather(leaf, tiled=True)
    return leaf
