"""Device mesh and shardings: a data axis for the batch, an FSDP axis for parameters.

The same code runs unsharded on one device (a 1 x 1 mesh), on 8 fake CPU
devices, and across hosts: only the mesh shape changes.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from stmodel.errors import UserError

DATA, FSDP = "data", "fsdp"


def make_mesh(shape: tuple[int, int] = (0, 1)) -> Mesh:
    """A (data, fsdp) mesh; data = 0 means all devices / fsdp.

    A single process may use fewer devices than it has (the first ones); a
    multi-process run must use them all.
    """
    data, fsdp = shape
    n = jax.device_count()
    if data == 0:
        if n % fsdp:
            raise UserError(f"fsdp = {fsdp} does not divide the {n} devices")
        data = n // fsdp
    if data * fsdp > n or (jax.process_count() > 1 and data * fsdp != n):
        raise UserError(
            f"mesh {data}x{fsdp} needs {data * fsdp} devices, but {n} are present "
            "(for fake CPU devices set XLA_FLAGS=--xla_force_host_platform_device_count=N)"
        )
    # Auto axes: XLA propagates shardings through the model's reshapes (explicit
    # sharding would need every reshape annotated).
    return jax.make_mesh(
        (data, fsdp),
        (DATA, FSDP),
        axis_types=(jax.sharding.AxisType.Auto,) * 2,
        devices=jax.devices()[: data * fsdp],
    )


def parse_mesh(text: str) -> tuple[int, int]:
    try:
        data, fsdp = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise UserError(f"--mesh {text!r}: expected DATAxFSDP, e.g. 4x2") from None
    return data, fsdp


def parameter_sharding(mesh: Mesh, shape: tuple[int, ...]) -> NamedSharding:
    """Shard a parameter's largest dimension divisible by the FSDP size; else replicate."""
    fsdp = mesh.shape[FSDP]
    spec = [None] * len(shape)
    if fsdp > 1:
        candidates = [i for i, size in enumerate(shape) if size % fsdp == 0]
        if candidates:
            spec[max(candidates, key=lambda i: shape[i])] = FSDP
    return NamedSharding(mesh, P(*spec))


def tree_shardings(mesh: Mesh, tree):
    return jax.tree.map(lambda x: parameter_sharding(mesh, np.shape(x)), tree)


def batch_sharding(mesh: Mesh, ndim: int) -> NamedSharding:
    """Leading (batch) dimension split over every device."""
    return NamedSharding(mesh, P((DATA, FSDP), *([None] * (ndim - 1))))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def global_batch(mesh: Mesh, local: np.ndarray) -> jax.Array:
    """Assemble this process's share of a batch into one global, sharded array."""
    return jax.make_array_from_process_local_data(batch_sharding(mesh, local.ndim), local)
