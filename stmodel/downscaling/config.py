"""Settings of a downscaling fine-tune: one frozen dataclass, saved in the checkpoint."""

from __future__ import annotations

import dataclasses
import json

from stmodel.downscaling.baselines import METHODS
from stmodel.errors import UserError
from stmodel.training.config import OptimizerConfig

MODES = ("full", "frozen", "lora")
INITS = ("pretrained", "random")
# Settings that may differ when a run is resumed.
RESUMABLE_CHANGES = ("steps", "checkpoint_every", "keep_checkpoints")


@dataclasses.dataclass(frozen=True)
class DownscaleConfig:
    """How to fine-tune.

    mode: ``full`` trains everything; ``frozen`` keeps the pretrained backbone fixed
    and trains the embedding, head and position bias; ``lora`` keeps it fixed too
    but adds trainable low-rank adapters to its dense layers.
    init: ``pretrained`` starts the backbone from the checkpoint; ``random`` uses
    the same architecture from scratch (the control for the value of pre-training).
    The position bias stays trainable in every mode: it encodes the geometry of
    the token grid, which is the region's, not the globe's.
    """

    mode: str = "full"
    init: str = "pretrained"
    steps: int = 300
    batch_size: int = 4
    seed: int = 0
    interpolation: str = "bicubic"  # the coarse fields' interpolation to the fine grid
    patch: tuple[int, ...] = ()  # (pressure, lat, lon); empty: the pretrained model's
    halo_tokens: int = 1  # tokens of context the network sees beyond each edge
    lora_rank: int = 8
    lora_alpha: float = 16.0
    train_period: str = ""  # START/END; empty: the fine data's train_period attribute
    validation_period: str = ""  # empty: the fine data's validation_period, if any
    validate_every: int = 100
    validation_batches: int = 8
    checkpoint_every: int = 100
    keep_checkpoints: int = 2  # the last K, plus the best by validation loss
    nan_policy: str = "stop"  # "stop" (keep the last good checkpoint) or "skip" (count)
    optimizer: OptimizerConfig = OptimizerConfig(  # noqa: RUF009 (frozen, so shared safely)
        learning_rate=1e-3,
        warmup_steps=20,
        end_learning_rate_fraction=0.0,
        weight_decay=3e-6,
        grad_clip_norm=1.0,
    )

    def __post_init__(self):
        object.__setattr__(self, "patch", tuple(int(v) for v in self.patch))
        if self.mode not in MODES:
            raise UserError(f"--mode {self.mode!r}: choose one of {', '.join(MODES)}")
        if self.init not in INITS:
            raise UserError(f"--init {self.init!r}: choose one of {', '.join(INITS)}")
        if self.interpolation not in METHODS:
            raise UserError(
                f"--interpolation {self.interpolation!r}: choose one of {', '.join(METHODS)}"
            )
        if self.patch and (len(self.patch) != 3 or min(self.patch) < 1):
            raise UserError(
                f"--patch {self.patch}: expected three positive sizes "
                "(pressure, lat, lon), e.g. 2,4,4"
            )
        if self.steps < 0 or self.batch_size < 1 or self.lora_rank < 1 or self.halo_tokens < 0:
            raise UserError("steps and halo must be >= 0, batch size and LoRA rank >= 1")
        if self.checkpoint_every < 1 or self.keep_checkpoints < 1:
            raise UserError("checkpoint_every and keep_checkpoints must be >= 1")
        if self.nan_policy not in ("stop", "skip"):
            raise UserError(f"nan_policy must be 'stop' or 'skip', got {self.nan_policy!r}")

    def to_dict(self) -> dict:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, d: dict) -> DownscaleConfig:
        d = dict(d)
        d["optimizer"] = OptimizerConfig(**d.get("optimizer", {}))
        d["patch"] = tuple(d.get("patch", ()))
        return cls(**d)

    def differences(self, other: DownscaleConfig) -> list[str]:
        """Settings that differ, except those a resumed run may change: the number of
        steps (a run may be extended) and how often it saves (no effect on the result)."""
        mine, theirs = self.to_dict(), other.to_dict()
        return sorted(k for k in mine if k not in RESUMABLE_CHANGES and mine[k] != theirs[k])
