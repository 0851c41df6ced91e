"""Low-rank adapters (LoRA, Hu et al. 2021) on the backbone's dense layers.

A frozen pretrained ``y = x W + b`` becomes ``y = x W + b + (alpha / r) x A B`` with
A [in, r] and B [r, out] trained. B starts at zero, so adding adapters does not
change the network; A starts random so that B's gradient is not zero.
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import nnx

from stmodel.model.transformer_block import EarthTransformerBlock

# Dense layers of every transformer block that get an adapter.
ADAPTED_LAYERS = (("attention", "qkv"), ("attention", "proj"), ("mlp", "fc1"), ("mlp", "fc2"))
ADAPTER_PARAMETERS = ("lora_a", "lora_b")


class LoRALinear(nnx.Module):
    """A pretrained nnx.Linear plus a trainable low-rank update."""

    def __init__(self, base: nnx.Linear, rank: int, alpha: float, *, rngs: nnx.Rngs):
        if rank < 1:
            raise ValueError(f"LoRA rank must be >= 1, got {rank}")
        self.base = base
        self.scale = float(alpha) / rank
        in_features, out_features = base.in_features, base.out_features
        param_dtype = base.kernel[...].dtype
        self.lora_a = nnx.Param(
            nnx.initializers.normal(stddev=in_features**-0.5)(
                rngs.params(), (in_features, rank), param_dtype
            )
        )
        self.lora_b = nnx.Param(jnp.zeros((rank, out_features), param_dtype))

    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        update = (x @ self.lora_a[...].astype(x.dtype)) @ self.lora_b[...].astype(x.dtype)
        return self.base(x) + self.scale * update


def add_adapters(
    backbone_modules: list[nnx.Module], rank: int, alpha: float, *, rngs: nnx.Rngs
) -> int:
    """Wrap the dense layers of every transformer block under the given modules; returns how
    many layers got an adapter."""
    count = 0
    blocks = [
        node
        for module in backbone_modules
        for _, node in nnx.iter_graph(module)
        if isinstance(node, EarthTransformerBlock)
    ]
    for block in blocks:
        for parent_name, layer_name in ADAPTED_LAYERS:
            parent = getattr(block, parent_name)
            layer = getattr(parent, layer_name)
            if isinstance(layer, LoRALinear):
                continue
            setattr(parent, layer_name, LoRALinear(layer, rank, alpha, rngs=rngs))
            count += 1
    return count
