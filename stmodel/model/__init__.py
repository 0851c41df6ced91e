"""The 3D Earth-Specific Transformer (Pangu-Weather architecture) in Flax NNX.

Public entry points:

* :class:`ModelConfig` (``ModelConfig.preset('tiny' | 'small' | 'base' | 'pangu', **overrides)``)
* :class:`EarthSpecificTransformer`: the one-step network in normalised space
* :class:`NormalisedResidualModel`: physical units in and out, residual prediction
* :func:`count_parameters`, :func:`abstract_model` (FLOP counts: :mod:`stmodel.benchmarks.flops`)
* stochastic networks (``ModelConfig.noise_dim > 0``): their noise from
  :func:`stmodel.model.noise.member_noise` / :func:`~stmodel.model.noise.batch_noise`
"""

from stmodel.model.config import PRESETS, ModelConfig
from stmodel.model.earth_transformer import (
    EarthSpecificTransformer,
    abstract_model,
    count_parameters,
)
from stmodel.model.precision import DtypePolicy
from stmodel.model.wrappers import NormalisedResidualModel, standardise_constants

__all__ = [
    "PRESETS",
    "DtypePolicy",
    "EarthSpecificTransformer",
    "ModelConfig",
    "NormalisedResidualModel",
    "abstract_model",
    "count_parameters",
    "standardise_constants",
]
