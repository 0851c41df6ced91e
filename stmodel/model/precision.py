"""Mixed-precision policy: which dtype parameters, computation and outputs use.

One policy object is built from ``ModelConfig.dtype`` and handed to every layer,
so the choice is made in one place: parameters and optimiser state stay float32,
matrix products run in the compute dtype, and the network's outputs (and the
attention softmax, and LayerNorm statistics) are float32.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class DtypePolicy:
    compute: jnp.dtype
    param: jnp.dtype = jnp.float32
    output: jnp.dtype = jnp.float32

    @classmethod
    def from_name(cls, name: str) -> DtypePolicy:
        """'float32' (everything float32) or 'bfloat16' (bfloat16 compute, float32 parameters)."""
        if name == "float32":
            return cls(compute=jnp.float32)
        if name == "bfloat16":
            return cls(compute=jnp.bfloat16)
        raise ValueError(f"unknown dtype policy {name!r}; use 'float32' or 'bfloat16'")

    @property
    def is_mixed(self) -> bool:
        return self.compute != self.param

    def cast_to_compute(self, tree):
        return jax.tree.map(lambda x: x.astype(self.compute), tree)

    def cast_to_output(self, tree):
        return jax.tree.map(lambda x: x.astype(self.output), tree)
