"""How a forecasting model is trained: the objective, apart from the task and its data.

A task (stmodel.training.forecasting_task) says what is predicted from what: the data,
the network, the batches of (state at t, states at t + dt .. t + n dt). A method says
how the network is fitted to them, as anemoi-core's ``train/methods``:

- ``deterministic`` (:mod:`.deterministic`): one forecast per sample, the area-weighted
  MAE or MSE of its rollout (Pangu, GraphCast);
- ``ensemble_crps`` (:mod:`.ensemble`): M members per sample, each with its own noise
  through a stochastic network, the almost fair CRPS of their rollouts (AIFS-ENS, FGN).

A config picks one (``method.kind``); a new method is a module with the
:class:`TrainingMethod` interface, an entry in ``METHODS`` and its kind (with any
settings of its own) in stmodel.training.config's MethodConfig, which the CLI reads
without importing JAX.
"""

from __future__ import annotations

from typing import Any, Protocol

import jax

from stmodel.training.methods.deterministic import Deterministic
from stmodel.training.methods.ensemble import EnsembleCrps


class TrainingMethod(Protocol):
    members: int  # forecasts per sample; validation reports CRPS and spread beyond one

    @classmethod
    def from_config(cls, config: Any, model_config: Any, loss_arrays: dict) -> TrainingMethod:
        """The method of a TrainConfig for a network of this ModelConfig, with the task's
        loss scales and weights (jax arrays)."""
        ...

    def loss(self, advance, params: Any, batch: Any, key: jax.Array, deterministic: bool):
        """(scalar loss, predictions): predictions upper [batch, member, step, level, lat,
        lon, var] and surface [batch, member, step, lat, lon, var], one member for a
        deterministic method. `key` is the step's (stmodel.training.loop): it seeds
        stochastic depth and noise; `deterministic` turns stochastic depth off."""
        ...


METHODS = {"deterministic": Deterministic, "ensemble_crps": EnsembleCrps}

__all__ = ["METHODS", "Deterministic", "EnsembleCrps", "TrainingMethod"]
