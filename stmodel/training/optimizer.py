"""AdamW with warm-up, cosine decay and gradient clipping; optional frozen parameters."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import optax

from stmodel.model.parameter_names import path_name
from stmodel.training.config import OptimizerConfig


def learning_rate_schedule(config: OptimizerConfig, total_steps: int) -> optax.Schedule:
    warmup = min(config.warmup_steps, max(total_steps - 1, 0))
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=config.learning_rate,
        warmup_steps=warmup,
        decay_steps=max(total_steps, warmup + 1),
        end_value=config.learning_rate * config.end_learning_rate_fraction,
    )


def make_optimizer(
    config: OptimizerConfig, total_steps: int, params, frozen_prefixes: Sequence[str] = ()
) -> optax.GradientTransformation:
    """Clip by global norm, then AdamW; parameters under a frozen prefix never change."""
    tx = optax.chain(
        optax.clip_by_global_norm(config.grad_clip_norm),
        optax.adamw(
            learning_rate_schedule(config, total_steps),
            b1=config.b1,
            b2=config.b2,
            weight_decay=config.weight_decay,
        ),
    )
    if not frozen_prefixes:
        return tx
    labels = jax.tree_util.tree_map_with_path(
        lambda path, _: "frozen" if path_name(path).startswith(tuple(frozen_prefixes)) else "train",
        params,
    )
    return optax.multi_transform({"train": tx, "frozen": optax.set_to_zero()}, labels)
