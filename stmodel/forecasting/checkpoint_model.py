"""A trained model as the checkpoint holds it: network, parameters, statistics,
constants, grid and layout, so forecasting needs nothing else."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from stmodel.data.layout import NormalisationStats, VariableLayout
from stmodel.errors import UserError
from stmodel.model.config import ModelConfig
from stmodel.model.earth_transformer import EarthSpecificTransformer
from stmodel.model.wrappers import NormalisedResidualModel
from stmodel.models import is_pretrained, read_pretrained, resolve_checkpoint
from stmodel.training.checkpointing import open_for_reading
from stmodel.training.config import TrainConfig
from stmodel.training.optimizer import make_optimizer, parameter_names
from stmodel.training.step import TrainState, split_network

CHECKPOINT_FORMAT = "stmodel-checkpoint-1"


def model_config_for(
    config: TrainConfig, layout: VariableLayout, grid: tuple[int, int]
) -> ModelConfig:
    """The training preset's network, sized to the data."""
    return ModelConfig.preset(
        config.model_preset,
        **{
            **dict(config.model_overrides),
            "grid": grid,
            "n_levels": len(layout.levels),
            "n_upper_vars": len(layout.upper_air),
            "n_surface_vars": len(layout.surface),
            "n_constant_fields": len(layout.constants),
        },
    )


@dataclasses.dataclass
class CheckpointModel:
    model_config: ModelConfig
    train_config: TrainConfig
    layout: VariableLayout
    norm: NormalisationStats
    constants: np.ndarray  # [lat, lon, constant]
    lat: np.ndarray
    lon: np.ndarray
    graphdef: nnx.GraphDef
    rest: nnx.State  # non-parameter state (RNG streams)
    params: nnx.State
    step: int = 0

    @property
    def dt_hours(self) -> int:
        return self.train_config.dt_hours

    @property
    def n_parameters(self) -> int:
        return int(sum(np.prod(np.shape(x)) for x in jax.tree.leaves(self.params)))

    @classmethod
    def initialise(
        cls,
        config: TrainConfig,
        layout: VariableLayout,
        norm: NormalisationStats,
        constants: np.ndarray,
        *,
        lat: np.ndarray,
        lon: np.ndarray,
    ) -> CheckpointModel:
        model_config = model_config_for(config, layout, (len(lat), len(lon)))
        graphdef, params, rest = _split_model(model_config, norm, seed=config.seed)
        return cls(
            model_config,
            config,
            layout,
            norm,
            np.asarray(constants, np.float32),
            np.asarray(lat),
            np.asarray(lon),
            graphdef,
            rest,
            params,
        )

    def advance(self, params, upper, surface, constants, key, deterministic: bool):
        """One dt step in physical units; `key` seeds stochastic depth when training."""
        model = nnx.merge(self.graphdef, params, self.rest, copy=True)
        if not deterministic:
            nnx.reseed(model, dropout=key)
        return model(upper, surface, constants, deterministic=deterministic)

    def static_arrays(self) -> dict:
        """Arrays saved beside the training state."""
        return {
            "normalisation": {
                k: np.asarray(v, np.float32) for k, v in dataclasses.asdict(self.norm).items()
            },
            "constants": np.asarray(self.constants, np.float32),
            "lat": np.asarray(self.lat, np.float64),
            "lon": np.asarray(self.lon, np.float64),
        }

    def metadata(self, step: int, config: TrainConfig) -> dict:
        return {
            "step": step,
            "train_config": config.to_dict(),
            "model_config": self.model_config.to_dict(),
            "layout": self.layout.to_dict(),
            "dt_hours": config.dt_hours,
            "data_position": {"seed": config.seed, "step": step},
            "format": CHECKPOINT_FORMAT,
        }

    def abstract_arrays(self, sharding: jax.sharding.Sharding | None = None) -> dict:
        """Shapes and dtypes of everything a checkpoint of this model holds.

        `sharding` places every array (default: this process's first device), so a
        checkpoint written on any device layout restores here.
        """
        sharding = sharding or jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
        tx = make_optimizer(
            self.train_config.optimizer,
            self.train_config.steps,
            self.params,
            self.train_config.freeze,
        )
        ema = self.params if self.train_config.optimizer.ema_decay > 0 else None
        tree = {"state": TrainState(self.params, tx.init(self.params), ema), **self.static_arrays()}
        return jax.tree.map(
            lambda x: jax.ShapeDtypeStruct(np.shape(x), x.dtype, sharding=sharding), tree
        )

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
            model = cls._load_pretrained(directory)
            if step is not None and step != model.step:
                raise UserError(
                    f"{directory}: a shipped model holds one step ({model.step}), not {step}"
                )
            return model
        store = open_for_reading(directory)
        try:
            meta = store.read_meta(step)
            if meta.get("format") != CHECKPOINT_FORMAT:
                raise UserError(f"{directory}: not an stmodel checkpoint")
            config = TrainConfig.from_dict(meta["train_config"])
            layout = VariableLayout.from_dict(meta["layout"])
            model_config = ModelConfig.from_dict(meta["model_config"])
            n_lat, n_lon = model_config.grid
            n_levels, n_upper, n_surface = (
                len(layout.levels),
                len(layout.upper_air),
                len(layout.surface),
            )
            # Placeholders of the right shapes: the checkpoint's values replace them.
            norm = NormalisationStats(
                *(
                    np.ones(shape, np.float32)
                    for shape in ((n_levels, n_upper),) * 3 + ((n_surface,),) * 3
                )
            )
            graphdef, params, rest = _split_model(model_config, norm, seed=0)
            shell = cls(
                model_config,
                config,
                layout,
                norm,
                np.zeros((n_lat, n_lon, len(layout.constants)), np.float32),
                np.zeros(n_lat),
                np.zeros(n_lon),
                graphdef,
                rest,
                params,
            )
            arrays, restored_meta = store.restore(shell.abstract_arrays(), step=step)
        finally:
            store.close()
        state = TrainState(*arrays["state"])
        chosen = state.ema_params if (use_ema and state.ema_params is not None) else state.params
        norm = NormalisationStats(**{k: np.asarray(v) for k, v in arrays["normalisation"].items()})
        graphdef, _, rest = _split_model(model_config, norm, seed=0)
        return dataclasses.replace(
            shell,
            norm=norm,
            graphdef=graphdef,
            rest=rest,
            constants=np.asarray(arrays["constants"]),
            lat=np.asarray(arrays["lat"]),
            lon=np.asarray(arrays["lon"]),
            params=chosen,
            step=int(restored_meta["step"]),
        )

    @classmethod
    def _load_pretrained(cls, directory: Path) -> CheckpointModel:
        meta, by_name, static = read_pretrained(directory)
        config = TrainConfig.from_dict(meta["train_config"])
        layout = VariableLayout.from_dict(meta["layout"])
        model_config = ModelConfig.from_dict(meta["model_config"])
        norm = NormalisationStats(
            **{
                field.name: static[f"normalisation.{field.name}"]
                for field in dataclasses.fields(NormalisationStats)
            }
        )
        graphdef, params, rest = _split_model(model_config, norm, seed=0)
        names = parameter_names(params)
        if sorted(names) != sorted(by_name):
            raise UserError(
                f"{directory}: its parameters do not match the network its "
                "model.json describes; the folder is damaged or from another version"
            )
        leaves = [
            jnp.asarray(by_name[n]).reshape(np.shape(leaf))
            for n, leaf in zip(names, jax.tree.leaves(params))
        ]
        params = jax.tree.unflatten(jax.tree.structure(params), leaves)
        return cls(
            model_config,
            config,
            layout,
            norm,
            static["constants"],
            static["lat"],
            static["lon"],
            graphdef,
            rest,
            params,
            step=int(meta["step"]),
        )

    def pretrained_arrays(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """(parameters by path name, static arrays): what a shipped model stores."""
        params = {
            n: np.asarray(x)
            for n, x in zip(parameter_names(self.params), jax.tree.leaves(self.params))
        }
        static = {
            f"normalisation.{k}": np.asarray(v, np.float32)
            for k, v in dataclasses.asdict(self.norm).items()
        }
        static.update(
            constants=np.asarray(self.constants, np.float32),
            lat=np.asarray(self.lat, np.float64),
            lon=np.asarray(self.lon, np.float64),
        )
        return params, static

    def warm_start_from(self, directory: str | Path):
        """Parameters from another checkpoint wherever path and shape match; report the rest."""
        other = CheckpointModel.load(Path(directory))
        mine = dict(zip(parameter_names(self.params), jax.tree.leaves(self.params)))
        theirs = dict(zip(parameter_names(other.params), jax.tree.leaves(other.params)))
        matched = [n for n in mine if n in theirs and np.shape(mine[n]) == np.shape(theirs[n])]
        if not matched:
            raise UserError(
                f"{directory}: no parameter matches this model's in name and shape; "
                "was it trained with another model preset?"
            )
        names = parameter_names(self.params)
        leaves = [
            theirs[n] if n in matched else leaf
            for n, leaf in zip(names, jax.tree.leaves(self.params))
        ]
        return jax.tree.unflatten(jax.tree.structure(self.params), [jnp.asarray(x) for x in leaves])


def _split_model(model_config: ModelConfig, norm: NormalisationStats, seed: int):
    """(graphdef, params, rest) of the network wrapped with its normalisation.

    rest holds the statistics and RNG streams: fixed during training.
    """
    network = EarthSpecificTransformer(model_config, rngs=nnx.Rngs(params=seed, dropout=seed + 1))
    return split_network(NormalisedResidualModel(network, norm))
