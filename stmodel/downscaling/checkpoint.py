"""A fine-tuned downscaling model as its checkpoint holds it: everything `apply` and
`evaluate` need (network, statistics, region, grids, static fields, the
bilinear mean residual of the training period).

The training loop saves the parameters, optimiser state and EMA as separate items
beside this module's static arrays and metadata; loading reads the parameters
alone, builds the network once and no optimiser."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import jax
import numpy as np
from flax import nnx

from stmodel.checkpoints.store import open_for_reading
from stmodel.data.layout import VariableLayout
from stmodel.downscaling.adapters import ADAPTER_PARAMETERS, add_adapters
from stmodel.downscaling.config import DownscaleConfig
from stmodel.downscaling.network import (
    BACKBONE_MODULES,
    DownscaleNetworkConfig,
    DownscaleStats,
    DownscalingModel,
    DownscalingNetwork,
)
from stmodel.downscaling.region import RegionBox
from stmodel.downscaling.transfer import bare_name
from stmodel.errors import UserError
from stmodel.model.parameter_names import (
    named_arrays,
    parameter_names,
    replace_by_name,
    upgrade_names,
)

CHECKPOINT_FORMAT = "stmodel-downscale-2"
LEGACY_FORMAT = "stmodel-downscale-1"  # earlier checkpoints: one item of every array
# The region's fine grid, the network's (region plus halo) and the training coarse grid.
GRID_ARRAYS = ("fine_lat", "fine_lon", "network_lat", "network_lon", "coarse_lat", "coarse_lon")


def build_model(
    network_config: DownscaleNetworkConfig, stats: DownscaleStats, config: DownscaleConfig
) -> DownscalingModel:
    """A fresh model (adapters added in LoRA mode); parameters from the seed."""
    network = DownscalingNetwork(network_config, rngs=nnx.Rngs(params=config.seed))
    model = DownscalingModel(network, stats)
    if config.mode == "lora":
        add_lora(model, config)
    return model


def add_lora(model: DownscalingModel, config: DownscaleConfig) -> int:
    modules = [getattr(model.network.backbone, name) for name in BACKBONE_MODULES]
    return add_adapters(
        modules, config.lora_rank, config.lora_alpha, rngs=nnx.Rngs(params=config.seed + 1)
    )


def frozen_parameter_names(params, mode: str) -> tuple[str, ...]:
    """Full names of the parameters the optimiser leaves alone in this mode."""
    if mode == "full":
        return ()
    backbone = "network.backbone."
    frozen = []
    for name in parameter_names(params):
        if not name.startswith(backbone) or "position_bias" in name:
            continue
        if mode == "lora" and bare_name(name).rsplit(".", 1)[-1] in ADAPTER_PARAMETERS:
            continue
        frozen.append(name)
    return tuple(frozen)


def _non_empty(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    # Zero-size arrays (upper-air statistics of surface-only data) are rebuilt from the
    # layout rather than stored.
    return {k: v for k, v in arrays.items() if np.size(v) > 0}


@dataclasses.dataclass
class DownscalingCheckpoint:
    config: DownscaleConfig
    network_config: DownscaleNetworkConfig
    layout: VariableLayout
    box: RegionBox
    grids: dict[str, np.ndarray]  # GRID_ARRAYS
    static: np.ndarray  # [lat, lon, static] on the network's grid
    stats: DownscaleStats
    mean_residual_upper: np.ndarray  # [level, lat, lon, var]: fine - bilinear, training mean
    mean_residual_surface: np.ndarray  # [lat, lon, var]
    provenance: dict  # pretrained checkpoint, transfer report, data
    graphdef: Any = None
    rest: Any = None
    params: Any = None
    step: int = 0

    @classmethod
    def from_model(cls, model: DownscalingModel, **fields) -> DownscalingCheckpoint:
        graphdef, params, rest = nnx.split(model, nnx.Param, ...)
        return cls(graphdef=graphdef, params=params, rest=rest, **fields)

    @property
    def n_parameters(self) -> int:
        return int(sum(np.size(x) for x in jax.tree.leaves(self.params)))

    def fine_fields(self, params, upper, surface, time, static):
        """Physical fine fields over the region from coarse fields interpolated to the
        network's grid (jit-able)."""
        model = nnx.merge(self.graphdef, params, self.rest, copy=True)
        return model(upper, surface, time, static)

    def static_arrays(self) -> dict:
        return {
            "statistics": _non_empty(self.stats.to_arrays()),
            "grids": {k: np.asarray(self.grids[k], np.float64) for k in GRID_ARRAYS},
            "static": np.asarray(self.static, np.float32),
            "mean_residual": _non_empty(
                {
                    "upper": np.asarray(self.mean_residual_upper, np.float32),
                    "surface": np.asarray(self.mean_residual_surface, np.float32),
                }
            ),
        }

    def metadata(self) -> dict:
        return {
            "config": self.config.to_dict(),
            "network_config": self.network_config.to_dict(),
            "layout": self.layout.to_dict(),
            "region": self.box.text(),
            "provenance": self.provenance,
            "grid_sizes": {k: int(np.size(self.grids[k])) for k in GRID_ARRAYS},
        }

    @classmethod
    def load(cls, directory: str | Path, step: int | None = None) -> DownscalingCheckpoint:
        """Rebuild from a checkpoint alone (EMA weights when the run kept them)."""
        store = open_for_reading(Path(directory))
        try:
            meta = store.read_meta(step)
            if meta.get("format") == CHECKPOINT_FORMAT:
                params_item = "ema_params" if meta.get("has_ema") else "params"
                items, meta = store.restore({params_item: None, "static": None}, step=step)
                params, static = items[params_item], items["static"]
            elif meta.get("format") == LEGACY_FORMAT:
                items, meta = store.restore({"arrays": None}, step=step)
                params, static = items["arrays"].pop("state")["params"], items["arrays"]
            else:
                raise UserError(
                    f"{directory}: not a downscaling checkpoint (made by `stmodel downscale train`)"
                )
        finally:
            store.close()
        config = DownscaleConfig.from_dict(meta["config"])
        network_config = DownscaleNetworkConfig.from_dict(meta["network_config"])
        n_lat, n_lon = network_config.region_grid
        # Zero-size arrays (upper-air statistics of surface-only data) were not stored.
        placeholder = DownscaleStats.placeholder(network_config)
        stats = DownscaleStats(
            **{
                k: np.asarray(v)
                for k, v in {**placeholder.to_arrays(), **static["statistics"]}.items()
            }
        )
        mean_residual = {
            "upper": np.zeros(
                (network_config.n_levels, n_lat, n_lon, network_config.n_upper_vars), np.float32
            ),
            "surface": np.zeros((n_lat, n_lon, network_config.n_surface_vars), np.float32),
            **{k: np.asarray(v) for k, v in static.get("mean_residual", {}).items()},
        }
        model = build_model(network_config, stats, config)
        graphdef, initial, rest = nnx.split(model, nnx.Param, ...)
        by_name = upgrade_names(named_arrays(params))
        names = parameter_names(initial)
        if sorted(names) != sorted(by_name):
            raise UserError(
                f"{directory}: its parameters do not match the network its metadata describes; "
                "the checkpoint is damaged or from another version"
            )
        return cls(
            config,
            network_config,
            VariableLayout.from_dict(meta["layout"]),
            RegionBox.parse(meta["region"]),
            {k: np.asarray(v) for k, v in static["grids"].items()},
            np.asarray(static["static"]),
            stats,
            mean_residual["upper"],
            mean_residual["surface"],
            meta["provenance"],
            graphdef=graphdef,
            rest=rest,
            params=replace_by_name(initial, by_name, names),
            step=int(meta["step"]),
        )
