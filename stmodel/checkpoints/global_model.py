"""A global forecast model as a checkpoint holds it: network, parameters, statistics,
constants, grid and layout, so forecasting needs nothing else.

Loading builds the network once, with the stored statistics, and fills in the stored
parameters by name; it never builds an optimiser. Three stores are read:
- a shipped model's folder (`stmodel.models`: parameters by name in arrays.npz);
- a training checkpoint (`stmodel-checkpoint-2`: items params, ema_params, optimizer,
  static and meta; only params or ema_params, static and meta are read);
- an earlier checkpoint (`stmodel-checkpoint-1`: one item of every array).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import numpy as np
from flax import nnx

from stmodel.checkpoints.store import open_for_reading
from stmodel.data.layout import NormalisationStats, VariableLayout
from stmodel.errors import UserError
from stmodel.model.config import ModelConfig
from stmodel.model.earth_transformer import EarthSpecificTransformer
from stmodel.model.parameter_names import (
    named_arrays,
    parameter_names,
    replace_by_name,
    upgrade_names,
)
from stmodel.model.wrappers import NormalisedResidualModel
from stmodel.models import is_pretrained, read_pretrained, resolve_checkpoint

CHECKPOINT_FORMAT = "stmodel-checkpoint-2"
LEGACY_FORMAT = "stmodel-checkpoint-1"


@dataclasses.dataclass
class CheckpointModel:
    model_config: ModelConfig
    layout: VariableLayout
    norm: NormalisationStats
    constants: np.ndarray  # [lat, lon, constant]
    lat: np.ndarray
    lon: np.ndarray
    dt_hours: int
    graphdef: nnx.GraphDef
    rest: nnx.State  # non-parameter state: statistics and RNG streams
    params: nnx.State
    step: int = 0
    train_config: dict = dataclasses.field(default_factory=dict)  # as trained, for the record

    @property
    def n_parameters(self) -> int:
        return int(sum(np.prod(np.shape(x)) for x in jax.tree.leaves(self.params)))

    @classmethod
    def initialise(
        cls,
        model_config: ModelConfig,
        layout: VariableLayout,
        norm: NormalisationStats,
        constants: np.ndarray,
        *,
        lat: np.ndarray,
        lon: np.ndarray,
        dt_hours: int,
        seed: int,
        train_config: dict | None = None,
    ) -> CheckpointModel:
        """A new network with parameters drawn from `seed`."""
        graphdef, params, rest = _split_model(model_config, norm, seed=seed)
        return cls(
            model_config,
            layout,
            norm,
            np.asarray(constants, np.float32),
            np.asarray(lat),
            np.asarray(lon),
            int(dt_hours),
            graphdef,
            rest,
            params,
            train_config=dict(train_config or {}),
        )

    def advance(
        self,
        params,
        upper,
        surface,
        constants,
        key,
        deterministic: bool,
        noise=None,
    ):
        """One dt step in physical units.

        key: seeds stochastic depth when training (deterministic False); unused otherwise.
        deterministic: no stochastic depth; it does not make a stochastic model's forecast
        deterministic, and says nothing of the noise.
        noise: [batch, model_config.noise_input_dim] float32, one Gaussian vector per member
        and step (stmodel.model.noise.batch_noise), required by a stochastic model
        (model_config.noise_dim > 0) and refused by a deterministic one.
        """
        model = nnx.merge(self.graphdef, params, self.rest, copy=True)
        if not deterministic:
            nnx.reseed(model, dropout=key)
        return model(upper, surface, constants, noise=noise, deterministic=deterministic)

    def static_arrays(self) -> dict:
        """The checkpoint's `static` item: statistics, constants and grid."""
        return {
            "normalisation": {
                k: np.asarray(v, np.float32) for k, v in dataclasses.asdict(self.norm).items()
            },
            "constants": np.asarray(self.constants, np.float32),
            "lat": np.asarray(self.lat, np.float64),
            "lon": np.asarray(self.lon, np.float64),
        }

    def metadata(self, step: int) -> dict:
        """The checkpoint's `meta` item."""
        return {
            "format": CHECKPOINT_FORMAT,
            "step": step,
            "train_config": self.train_config,
            "model_config": self.model_config.to_dict(),
            "layout": self.layout.to_dict(),
            "dt_hours": self.dt_hours,
        }

    @classmethod
    def load(
        cls, directory: str | Path, step: int | None = None, use_ema: bool = True
    ) -> CheckpointModel:
        """Rebuild from a checkpoint alone; EMA weights when the run kept them.

        `directory` is a training workdir, its checkpoints/ folder, or a shipped
        model's name or folder (see stmodel.models).
        """
        directory = resolve_checkpoint(directory)
        if is_pretrained(directory):
            meta, by_name, static = read_pretrained(directory)
            if step is not None and step != meta["step"]:
                raise UserError(
                    f"{directory}: a shipped model holds one step ({meta['step']}), not {step}"
                )
        else:
            meta, by_name, static = _read_checkpoint(directory, step, use_ema)
        return cls.from_arrays(meta, by_name, static, directory)

    @classmethod
    def from_arrays(
        cls, meta: dict, by_name: dict, static: dict, source: str | Path = "checkpoint"
    ) -> CheckpointModel:
        """The model from its metadata, parameters by name and static arrays by name
        ('normalisation.upper_mean', 'constants', 'lat', 'lon')."""
        model_config = ModelConfig.from_dict(meta["model_config"])
        norm = NormalisationStats(
            **{
                field.name: np.asarray(static[f"normalisation.{field.name}"])
                for field in dataclasses.fields(NormalisationStats)
            }
        )
        graphdef, params, rest = _split_model(model_config, norm, seed=0)
        names, by_name = parameter_names(params), upgrade_names(by_name)
        if sorted(names) != sorted(by_name):
            raise UserError(
                f"{source}: its parameters do not match the network its metadata "
                "describes; the checkpoint is damaged or from another version"
            )
        train_config = meta.get("train_config", {})
        return cls(
            model_config,
            VariableLayout.from_dict(meta["layout"]),
            norm,
            np.asarray(static["constants"]),
            np.asarray(static["lat"]),
            np.asarray(static["lon"]),
            int(meta.get("dt_hours") or train_config["dt_hours"]),
            graphdef,
            rest,
            replace_by_name(params, by_name, names),
            step=int(meta["step"]),
            train_config=train_config,
        )

    def pretrained_arrays(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """(parameters by path name, static arrays by name): what a shipped model stores."""
        params = {n: np.asarray(x) for n, x in named_arrays(self.params).items()}
        return params, {k: np.asarray(v) for k, v in named_arrays(self.static_arrays()).items()}

    def warm_start_from(self, directory: str | Path):
        """Parameters from another checkpoint wherever path and shape match; report the rest."""
        mine = named_arrays(self.params)
        theirs = named_arrays(CheckpointModel.load(Path(directory)).params)
        matched = {
            n: theirs[n] for n in mine if n in theirs and np.shape(mine[n]) == np.shape(theirs[n])
        }
        if not matched:
            raise UserError(
                f"{directory}: no parameter matches this model's in name and shape; "
                "was it trained with another model preset?"
            )
        return replace_by_name(self.params, matched)


def _read_checkpoint(directory: Path, step: int | None, use_ema: bool):
    """(meta, parameters by name, static arrays by name) of a training checkpoint."""
    store = open_for_reading(directory)
    try:
        meta = store.read_meta(step)
        if meta.get("format") == CHECKPOINT_FORMAT:
            params_item = "ema_params" if use_ema and meta.get("has_ema") else "params"
            items, meta = store.restore({params_item: None, "static": None}, step=step)
            params, static = items[params_item], items["static"]
        elif meta.get("format") == LEGACY_FORMAT:
            items, meta = store.restore({"arrays": None}, step=step)
            state = items["arrays"].pop("state")
            use = use_ema and state.get("ema_params") is not None
            params, static = state["ema_params" if use else "params"], items["arrays"]
        else:
            raise UserError(f"{directory}: not an stmodel checkpoint")
    finally:
        store.close()
    return meta, named_arrays(params), named_arrays(static)


def _split_model(model_config: ModelConfig, norm: NormalisationStats, seed: int):
    """(graphdef, params, rest) of the network wrapped with its normalisation.

    rest holds the statistics and RNG streams: fixed during training.
    """
    network = EarthSpecificTransformer(model_config, rngs=nnx.Rngs(params=seed, dropout=seed + 1))
    return nnx.split(NormalisedResidualModel(network, norm), nnx.Param, ...)
