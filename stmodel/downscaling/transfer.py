"""Starting a downscaling network from a pretrained global checkpoint.

Every parameter whose name and shape match the pretrained network's is copied:
all transformer blocks, the down- and up-sampling layers and, where the
variables, levels and patch agree, the upper-air embedding. The head is always
new (zero).

The Earth-specific position bias has one table per window type, one type per
(pressure window, latitude window); a region's token grid has other latitude
windows than the globe's. Each regional latitude window takes the table of the
global latitude window whose centre latitude is nearest to its own, so a region
in northern mid-latitudes starts from the bias the global model learnt for
northern mid-latitudes; pressure windows correspond one to one when the region
has the same pressure tokens. When it has not (e.g. surface fields only), the
bias tables keep their fresh initialisation while every other block weight is
reused. All of this is recorded in the checkpoint's metadata.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from stmodel.downscaling.network import DownscaleNetworkConfig
from stmodel.model.config import ModelConfig
from stmodel.model.parameter_names import parameter_names
from stmodel.model.window_geometry import WindowGeometry, symmetric_padding

BIAS_TABLE = "position_bias.table"
STAGE_INDEX = {"encoder_fine": 0, "encoder_coarse": 1, "decoder_coarse": 2, "decoder_fine": 3}


@dataclasses.dataclass(frozen=True)
class TransferReport:
    copied: tuple[str, ...]
    bias_mapped: tuple[str, ...]
    new: tuple[str, ...]
    latitude_windows: dict  # per token grid: regional lat window -> global lat window

    def to_dict(self) -> dict:
        return {
            "copied": len(self.copied),
            "bias_mapped": len(self.bias_mapped),
            "new": list(self.new),
            "latitude_windows": self.latitude_windows,
        }


def bare_name(name: str) -> str:
    """A parameter's name without the trailing '.value' of its nnx variable."""
    return name[: -len(".value")] if name.endswith(".value") else name


def token_latitudes(grid_lat: np.ndarray, patch_lat: int, coarse: bool) -> np.ndarray:
    """Centre latitude of each real token row of the fine (after 2 x 2 merging: coarse) stages."""
    grid_lat = np.asarray(grid_lat, np.float64)
    spacing = float(np.mean(np.diff(grid_lat))) if grid_lat.size > 1 else 1.0
    before, after = symmetric_padding(grid_lat.size, patch_lat)
    rows = grid_lat[0] + spacing * (np.arange(-before, grid_lat.size + after))
    tokens = rows.reshape(-1, patch_lat).mean(axis=1)
    if coarse:
        before, after = symmetric_padding(tokens.size, 2)
        step = patch_lat * spacing
        tokens = tokens[0] + step * np.arange(-before, tokens.size + after)
        tokens = tokens.reshape(-1, 2).mean(axis=1)
    return tokens


def window_centre_latitudes(geometry: WindowGeometry, latitudes: np.ndarray) -> np.ndarray:
    """[lat window] centre latitude of each latitude window (padding and the shifted roll
    extrapolate the token latitudes linearly)."""
    step = float(np.mean(np.diff(latitudes))) if latitudes.size > 1 else 1.0
    before = geometry.padding[1][0]
    window, shift = geometry.window[1], geometry.shift[1]
    n_windows = geometry.window_counts[1]
    padded_positions = np.arange(n_windows * window) + shift  # rolled left by the shift
    token_positions = padded_positions - before
    centres = latitudes[0] + step * token_positions
    return centres.reshape(n_windows, window).mean(axis=1)


def _geometries(token_grid, coarse_grid, window, depths):
    grids = (token_grid, coarse_grid, coarse_grid, token_grid)
    return {
        stage: [
            WindowGeometry(tuple(grids[i]), tuple(window), shifted=b % 2 == 1)
            for b in range(depths[i])
        ]
        for stage, i in STAGE_INDEX.items()
    }


def _bias_type_map(
    region: WindowGeometry,
    region_lat: np.ndarray,
    pretrained: WindowGeometry,
    pretrained_lat: np.ndarray,
) -> tuple[np.ndarray, list[int]] | None:
    """Global window type for each regional type, or None where pressure windows differ."""
    if (region.token_grid[0], region.padding[0]) != (
        pretrained.token_grid[0],
        pretrained.padding[0],
    ):
        return None
    region_centres = window_centre_latitudes(region, region_lat)
    global_centres = window_centre_latitudes(pretrained, pretrained_lat)
    nearest = [int(np.argmin(np.abs(global_centres - c))) for c in region_centres]
    n_pressure = region.window_counts[0]
    n_global_lat = pretrained.window_counts[1]
    types = [p * n_global_lat + nearest[l] for p in range(n_pressure) for l in range(len(nearest))]
    return np.asarray(types), nearest


def transfer_pretrained(
    params,
    pretrained_params,
    config: DownscaleNetworkConfig,
    region_lat: np.ndarray,
    pretrained_config: ModelConfig,
    pretrained_lat: np.ndarray,
    *,
    prefix: str = "network.",
    pretrained_prefix: str = "network.",
) -> tuple[object, TransferReport]:
    """`params` with every transferable pretrained parameter copied in (see module docstring)."""
    names = parameter_names(params)
    leaves = jax.tree.leaves(params)
    theirs = dict(zip(parameter_names(pretrained_params), jax.tree.leaves(pretrained_params)))
    region_geometries = _geometries(
        config.token_grid, config.coarse_token_grid, config.window, config.depths
    )
    global_geometries = _geometries(
        pretrained_config.token_grid,
        pretrained_config.coarse_token_grid,
        pretrained_config.window,
        pretrained_config.depths,
    )
    latitudes = {
        "region": {
            False: token_latitudes(region_lat, config.patch[1], False),
            True: token_latitudes(region_lat, config.patch[1], True),
        },
        "global": {
            False: token_latitudes(pretrained_lat, pretrained_config.patch[1], False),
            True: token_latitudes(pretrained_lat, pretrained_config.patch[1], True),
        },
    }
    copied, mapped, new, lat_windows = [], [], [], {}
    out = []
    for name, leaf in zip(names, leaves):
        local = name[len(prefix) :] if name.startswith(prefix) else name
        source = theirs.get(pretrained_prefix + local)
        # Bias tables always go through the latitude mapping, even when their shapes
        # agree: the k-th regional window is not the k-th global one.
        is_bias = bare_name(local).endswith(BIAS_TABLE)
        if source is not None and not is_bias and np.shape(source) == np.shape(leaf):
            out.append(jnp.asarray(source, leaf.dtype))
            copied.append(local)
            continue
        if source is not None and is_bias:
            stage, _, block = local.removeprefix("backbone.").split(".")[:3]
            coarse = STAGE_INDEX[stage] in (1, 2)
            region_geometry = region_geometries[stage][int(block)]
            global_geometry = global_geometries[stage][int(block)]
            found = _bias_type_map(
                region_geometry,
                latitudes["region"][coarse],
                global_geometry,
                latitudes["global"][coarse],
            )
            if (
                found is not None
                and np.shape(source)[0] == np.shape(leaf)[0]
                and np.shape(source)[2] == np.shape(leaf)[2]
            ):
                types, nearest = found
                out.append(jnp.asarray(np.asarray(source)[:, types, :], leaf.dtype))
                mapped.append(local)
                kind = "shifted" if region_geometry.shifted else "plain"
                lat_windows[f"{'coarse' if coarse else 'fine'}, {kind}"] = nearest
                continue
        out.append(leaf)
        new.append(local)
    report = TransferReport(tuple(copied), tuple(mapped), tuple(new), lat_windows)
    return jax.tree.unflatten(jax.tree.structure(params), out), report
