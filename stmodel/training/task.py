"""What a task gives the training loop (stmodel.training.loop).

The loop owns everything tasks share: the optimiser with frozen parameters, the
EMA, sharding over a (data, fsdp) mesh, the NaN policy, fixed-order gradients,
checkpoints with exact resume, stop signals, metrics and the summary. A task
owns its data, its network and its loss. Global forecasting
(stmodel.training.forecasting_task) and regional downscaling
(stmodel.downscaling.task) are the two tasks today; an ensemble, an
interpolator or a new variable would be a third module of this shape.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

import jax

from stmodel.training.config import OptimizerConfig


@dataclasses.dataclass(frozen=True)
class LoopSettings:
    """The loop's share of a task's config."""

    steps: int
    batch_size: int  # global, over every device and process
    seed: int
    optimizer: OptimizerConfig
    checkpoint_every: int
    keep_checkpoints: int = 3  # the last K, plus the best by validation loss
    validate_every: int = 0  # 0: never
    nan_policy: str = "stop"  # "stop" (keep the last good checkpoint) or "skip" (count)
    fixed_order_gradients: bool = False
    mesh: tuple[int, int] = (0, 1)  # (data, fsdp); data 0 = all devices / fsdp
    prefetch: int = 2  # batches read ahead, each by its own thread; 0: read when needed


class TrainingTask(Protocol):
    description: str  # what the progress bar says, e.g. "training"
    checkpoint_format: str  # the `format` of the checkpoints' metadata
    params: Any  # the parameters to start from (nnx.State), after any warm start
    frozen: tuple[str, ...]  # parameter name prefixes the optimiser leaves alone
    batch_axes: Any  # like a batch: 0 for per-sample fields (split over devices), None shared

    def loss(self, params: Any, batch: Any, key: jax.Array) -> jax.Array:
        """The scalar to minimise (jit-able); `key` seeds stochastic depth or noise."""
        ...

    def batch(self, step: int) -> Any:
        """This process's share of the batch of `step` (host arrays); depends only on
        the seed and the step, so that a resumed run sees the same batches."""
        ...

    def validate(self, params: Any, to_device) -> dict[str, float]:
        """Scores with `validation_loss` among them; to_device(batch) places a batch."""
        ...

    def static_arrays(self) -> dict:
        """Arrays the checkpoint keeps beside the parameters (statistics, grid)."""
        ...

    def metadata(self) -> dict:
        """JSON the checkpoint keeps: configs, layout, everything inference needs."""
        ...

    def check_resumable(self, meta: dict) -> None:
        """Raise UserError if the checkpoint in the workdir is of another run."""
        ...

    def summary(self, params: Any) -> dict:
        """Task-specific entries of summary.json."""
        ...
