"""Parameters by their dotted path name, e.g.
'network.backbone.encoder_fine.blocks.0.mlp.fc1.kernel.value': the key under which
checkpoints, shipped models, freezing and transfer find them."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np


def path_name(path) -> str:
    return jax.tree_util.keystr(path, simple=True, separator=".")


def parameter_names(params) -> list[str]:
    """Names of the leaves, in tree order."""
    return [path_name(path) for path, _ in jax.tree_util.tree_flatten_with_path(params)[0]]


def named_arrays(tree) -> dict[str, np.ndarray | jax.Array]:
    """{path name: leaf}; also flattens the nested dicts a checkpoint restores to."""
    return {path_name(path): leaf for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def replace_by_name(params, values: dict, names: list[str] | None = None):
    """`params` with each leaf whose name is in `values` replaced (reshaped to the leaf's
    shape, as a jax array); the other leaves are kept."""
    names = parameter_names(params) if names is None else names
    leaves = [
        jnp.asarray(values[n]).reshape(np.shape(leaf)) if n in values else leaf
        for n, leaf in zip(names, jax.tree.leaves(params))
    ]
    return jax.tree.unflatten(jax.tree.structure(params), leaves)


# Earlier checkpoints and shipped models named the encoder/decoder's modules directly
# under the network, without the `backbone.` attribute that holds them now.
_UNPREFIXED_BACKBONE = re.compile(
    r"^((?:[a-z_]+\.)*?network\.)"
    r"(encoder_fine|downsample|encoder_coarse|decoder_coarse|upsample|decoder_fine)\."
)


def upgrade_names(values: dict) -> dict:
    """{name: value} with names of older versions renamed to today's (values untouched)."""
    return {_UNPREFIXED_BACKBONE.sub(r"\1backbone.\2.", n): v for n, v in values.items()}
