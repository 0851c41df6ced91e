"""The downscaling network: the pretrained transformer's blocks between a new fine-grid
embedding and a new fine-grid head.

Inputs live on the fine grid of the region widened by a halo of fine cells on
every side (so cells at the region's edges have context on both sides): the
coarse fields interpolated to it (normalised), channels of the time of day and
year, and static fields. The output, cropped to the region, is the normalised
fine-scale residual, fine truth minus the interpolated coarse field, divided by
its training-period root mean square.

The backbone between embedding and head (an EncoderDecoder, ``backbone``) is
named as in :class:`~stmodel.model.earth_transformer.EarthSpecificTransformer`,
so pretrained parameters transfer by name (see :mod:`stmodel.downscaling.transfer`).
The embedding also keeps the global model's names (``patch_embedding.upper``,
``patch_embedding.surface``): where the shapes agree (same upper-air variables,
levels and patch) the pretrained upper-air embedding is reused too. The head is
new and starts at zero, so an untrained network reproduces the interpolation.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import nnx

from stmodel.data.layout import VariableLayout
from stmodel.model.config import BackboneConfig, ModelConfig
from stmodel.model.encoder_decoder import EncoderDecoder
from stmodel.model.patch_embedding import (
    surface_from_patches,
    surface_patches,
    upper_air_from_patches,
    upper_air_patches,
)
from stmodel.model.precision import DtypePolicy
from stmodel.model.window_attention import dense_init
from stmodel.model.window_geometry import symmetric_padding
from stmodel.model.wrappers import ResidualScaling, standardise_constants

# The backbone's modules, in call order (attributes of EncoderDecoder).
BACKBONE_MODULES = (
    "encoder_fine",
    "downsample",
    "encoder_coarse",
    "decoder_coarse",
    "upsample",
    "decoder_fine",
)
N_TIME_CHANNELS = 4  # sin/cos of local solar time, sin/cos of the day of the year


@dataclasses.dataclass(frozen=True)
class DownscaleNetworkConfig:
    """Shapes of one downscaling network; the transformer hyper-parameters are the
    pretrained model's. `fine_grid` is the network's grid: the region plus `halo`
    cells on each side in latitude and longitude."""

    fine_grid: tuple[int, int]
    n_levels: int
    n_upper_vars: int
    n_surface_vars: int
    n_static: int
    n_time_channels: int = N_TIME_CHANNELS
    patch: tuple[int, int, int] = (2, 4, 4)
    dim: int = 96
    depths: tuple[int, int, int, int] = (2, 6, 6, 2)
    heads: tuple[int, int, int, int] = (3, 6, 6, 3)
    window: tuple[int, int, int] = (2, 4, 8)
    mlp_ratio: float = 4.0
    post_norm: bool = True
    layer_norm_epsilon: float = 1e-5
    dtype: str = "float32"
    halo: tuple[int, int] = (0, 0)

    def __post_init__(self):
        for name in ("fine_grid", "patch", "depths", "heads", "window", "halo"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        if (self.n_levels == 0) != (self.n_upper_vars == 0):
            raise ValueError(
                f"n_levels ({self.n_levels}) and n_upper_vars ({self.n_upper_vars}) "
                "must both be zero (surface fields only) or both positive"
            )
        if self.n_upper_vars + self.n_surface_vars == 0:
            raise ValueError("a downscaling network needs at least one variable to predict")
        if min(self.region_grid) < 1 or min(self.halo) < 0:
            raise ValueError(f"halo {self.halo} leaves no region inside the grid {self.fine_grid}")

    @classmethod
    def from_backbone(
        cls,
        backbone: ModelConfig,
        layout: VariableLayout,
        region_grid: tuple[int, int],
        *,
        patch: tuple[int, int, int] | None = None,
        halo: tuple[int, int] = (0, 0),
    ) -> DownscaleNetworkConfig:
        """The pretrained network's transformer, for the region's variables and grid."""
        fine_grid = (region_grid[0] + 2 * halo[0], region_grid[1] + 2 * halo[1])
        return cls(
            fine_grid=fine_grid,
            halo=tuple(halo),
            n_levels=len(layout.levels) if layout.upper_air else 0,
            n_upper_vars=len(layout.upper_air),
            n_surface_vars=len(layout.surface),
            n_static=len(layout.constants),
            patch=tuple(patch or backbone.patch),
            dim=backbone.dim,
            depths=backbone.depths,
            heads=backbone.heads,
            window=backbone.window,
            mlp_ratio=backbone.mlp_ratio,
            post_norm=backbone.post_norm,
            layer_norm_epsilon=backbone.layer_norm_epsilon,
            dtype=backbone.dtype,
        )

    @property
    def region_grid(self) -> tuple[int, int]:
        """(lat, lon) cells of the region itself, the network's grid without the halo."""
        return (self.fine_grid[0] - 2 * self.halo[0], self.fine_grid[1] - 2 * self.halo[1])

    @property
    def n_upper_tokens(self) -> int:
        return math.ceil(self.n_levels / self.patch[0]) if self.n_upper_vars else 0

    @property
    def token_grid(self) -> tuple[int, int, int]:
        """(pressure, lat, lon) tokens of the fine stages; the last pressure token: surface."""
        return (
            self.n_upper_tokens + 1,
            math.ceil(self.fine_grid[0] / self.patch[1]),
            math.ceil(self.fine_grid[1] / self.patch[2]),
        )

    @property
    def coarse_token_grid(self) -> tuple[int, int, int]:
        pressure, lat, lon = self.token_grid
        return (pressure, math.ceil(lat / 2), math.ceil(lon / 2))

    @property
    def stage_dims(self) -> tuple[int, int, int, int]:
        return (self.dim, 2 * self.dim, 2 * self.dim, self.dim)

    @property
    def backbone(self) -> BackboneConfig:
        return BackboneConfig.of(self)

    def grid_padding(self) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
        """(before, after) padding of level, lat and lon to whole patches (as the global model)."""
        return (
            (-self.n_levels % self.patch[0], 0) if self.n_upper_vars else (0, 0),
            symmetric_padding(self.fine_grid[0], self.patch[1]),
            symmetric_padding(self.fine_grid[1], self.patch[2]),
        )

    def to_dict(self) -> dict:
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DownscaleNetworkConfig:
        return cls(**d)


class FineGridEmbedding(nnx.Module):
    """Fine-grid fields -> tokens [batch, pressure token, lat token, lon token, C].

    Upper-air patches become the upper tokens (as in the global model, with its patch
    reshapes); the surface fields, time channels and static fields of each patch become
    the surface token, the last pressure token. Unlike the global model's embedding it
    allows surface-only data (no upper-air variables).
    """

    def __init__(self, config: DownscaleNetworkConfig, *, policy: DtypePolicy, rngs: nnx.Rngs):
        self.config = config
        p_level, p_lat, p_lon = config.patch
        if config.n_upper_vars:
            self.upper = nnx.Linear(
                p_level * p_lat * p_lon * config.n_upper_vars,
                config.dim,
                kernel_init=dense_init,
                dtype=policy.compute,
                param_dtype=policy.param,
                rngs=rngs,
            )
        surface_fields = config.n_surface_vars + config.n_time_channels + config.n_static
        self.surface = nnx.Linear(
            p_lat * p_lon * surface_fields,
            config.dim,
            kernel_init=dense_init,
            dtype=policy.compute,
            param_dtype=policy.param,
            rngs=rngs,
        )

    def __call__(
        self, upper: jnp.ndarray, surface: jnp.ndarray, static: jnp.ndarray
    ) -> jnp.ndarray:
        """upper [batch, level, lat, lon, var], surface [batch, lat, lon, var + time],
        static [lat, lon, static]."""
        config = self.config
        padding = config.grid_padding()
        tokens = []
        if config.n_upper_vars:
            tokens.append(self.upper(upper_air_patches(upper, config.patch, padding)))
        static = jnp.broadcast_to(static[None], (surface.shape[0],) + static.shape)
        surface = jnp.concatenate([surface, static.astype(surface.dtype)], axis=-1)
        tokens.append(self.surface(surface_patches(surface, config.patch, padding)))
        return jnp.concatenate(tokens, axis=1)  # [batch, pressure token, lat, lon, C]


class FineGridHead(nnx.Module):
    """Tokens [batch, pressure token, lat, lon, 2C] -> fine-grid residuals, zero at start.

    The global model's patch recovery would start from random outputs and needs both
    upper-air and surface variables; this head starts at zero (so training starts from
    the interpolation) and allows either to be absent. The patch reshapes are shared."""

    def __init__(
        self, in_dim: int, config: DownscaleNetworkConfig, *, policy: DtypePolicy, rngs: nnx.Rngs
    ):
        self.config = config
        p_level, p_lat, p_lon = config.patch
        zeros = nnx.initializers.zeros_init()
        if config.n_upper_vars:
            self.upper = nnx.Linear(
                in_dim,
                p_level * p_lat * p_lon * config.n_upper_vars,
                kernel_init=zeros,
                dtype=policy.compute,
                param_dtype=policy.param,
                rngs=rngs,
            )
        if config.n_surface_vars:
            self.surface = nnx.Linear(
                in_dim,
                p_lat * p_lon * config.n_surface_vars,
                kernel_init=zeros,
                dtype=policy.compute,
                param_dtype=policy.param,
                rngs=rngs,
            )

    def __call__(self, x: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
        config = self.config
        padding = config.grid_padding()
        batch = x.shape[0]
        n_lat_cells, n_lon_cells = config.fine_grid
        n_pressure = config.n_upper_tokens
        if config.n_upper_vars:
            upper = upper_air_from_patches(
                self.upper(x[:, :n_pressure]),
                config.patch,
                padding,
                (config.n_levels, n_lat_cells, n_lon_cells),
            )
        else:
            upper = jnp.zeros((batch, 0, n_lat_cells, n_lon_cells, 0), x.dtype)
        if config.n_surface_vars:
            surface = surface_from_patches(
                self.surface(x[:, n_pressure]), config.patch, padding, config.fine_grid
            )
        else:
            surface = jnp.zeros((batch, n_lat_cells, n_lon_cells, 0), x.dtype)
        return upper, surface


class DownscalingNetwork(nnx.Module):
    """Embedding, the transformer backbone of the global model, and the fine-grid head."""

    def __init__(self, config: DownscaleNetworkConfig, *, rngs: nnx.Rngs):
        self.config = config
        policy = DtypePolicy.from_name(config.dtype)
        self.policy = policy
        self.patch_embedding = FineGridEmbedding(config, policy=policy, rngs=rngs)
        # No stochastic depth: fine-tuning budgets are short and the loss is deterministic.
        self.backbone = EncoderDecoder(
            config.backbone,
            drop_path_rates=[[0.0] * d for d in config.depths],
            remat=False,
            policy=policy,
            rngs=rngs,
        )
        self.head = FineGridHead(2 * config.dim, config, policy=policy, rngs=rngs)

    def __call__(
        self, upper: jnp.ndarray, surface: jnp.ndarray, static: jnp.ndarray
    ) -> tuple[jnp.ndarray, jnp.ndarray]:
        """Normalised inputs -> normalised residuals upper [batch, level, lat, lon, var],
        surface [batch, lat, lon, var] (float32)."""
        upper, surface, static = self.policy.cast_to_compute((upper, surface, static))
        x = self.patch_embedding(upper, surface, static)  # [batch, pressure, lat, lon, C]
        x = self.backbone(x)  # [batch, pressure, lat, lon, 2C]
        return self.policy.cast_to_output(self.head(x))


@dataclasses.dataclass(frozen=True)
class DownscaleStats:
    """Fixed statistics of the training period, in physical units."""

    input_upper_mean: np.ndarray  # [level, var]
    input_upper_std: np.ndarray  # [level, var]
    input_surface_mean: np.ndarray  # [var]
    input_surface_std: np.ndarray  # [var]
    residual_upper_std: np.ndarray  # [level, var]: std of fine truth - interpolated coarse
    residual_surface_std: np.ndarray  # [var]

    @classmethod
    def placeholder(cls, config: DownscaleNetworkConfig) -> DownscaleStats:
        upper = (config.n_levels, config.n_upper_vars)
        surface = (config.n_surface_vars,)
        return cls(
            *(
                np.ones(shape, np.float32)
                for shape in (upper, upper, surface, surface, upper, surface)
            )
        )

    def to_arrays(self) -> dict[str, np.ndarray]:
        return {k: np.asarray(v, np.float32) for k, v in dataclasses.asdict(self).items()}


def crop_halo(x, halo: tuple[int, int]):
    """[..., lat, lon, channel] (numpy or jax) without `halo` cells on each side."""
    lat, lon = halo
    return x[..., lat : x.shape[-3] - lat, lon : x.shape[-2] - lon, :]


class DownscalingModel(nnx.Module):
    """Fine fields in physical units = interpolated coarse + residual std x network output."""

    def __init__(self, network: DownscalingNetwork, stats: DownscaleStats):
        self.network = network
        config = network.config
        fields = ("input_upper_mean", "input_upper_std", "residual_upper_std")
        fields += ("input_surface_mean", "input_surface_std", "residual_surface_std")
        self.scaling = ResidualScaling(
            *(getattr(stats, name) for name in fields),
            upper_shape=(config.n_levels, config.n_upper_vars),
            surface_shape=(config.n_surface_vars,),
            names=tuple(f"DownscaleStats.{name}" for name in fields),
        )

    def crop(self, x: jnp.ndarray) -> jnp.ndarray:
        """[..., lat, lon, channel] on the network's grid -> the region (halo removed)."""
        return crop_halo(x, self.network.config.halo)

    def predict_residual(
        self, upper: jnp.ndarray, surface: jnp.ndarray, time: jnp.ndarray, static: jnp.ndarray
    ) -> tuple[jnp.ndarray, jnp.ndarray]:
        """Interpolated coarse upper [batch, level, lat, lon, var], surface [batch, lat, lon, var],
        time channels [batch, lat, lon, 4] and static fields [lat, lon, static], all on the
        network's grid -> normalised residuals over the region."""
        upper, surface = self.scaling.normalise(upper, surface)
        surface = jnp.concatenate([surface, time.astype(jnp.float32)], axis=-1)
        residual_upper, residual_surface = self.network(
            upper, surface, standardise_constants(static)
        )
        return self.crop(residual_upper), self.crop(residual_surface)

    def residual_targets(
        self,
        upper: jnp.ndarray,
        surface: jnp.ndarray,
        fine_upper: jnp.ndarray,
        fine_surface: jnp.ndarray,
    ) -> tuple[jnp.ndarray, jnp.ndarray]:
        """Targets from the interpolated fields (network's grid) and the fine truth (region)."""
        return self.scaling.residual(self.crop(upper), self.crop(surface), fine_upper, fine_surface)

    def __call__(
        self, upper: jnp.ndarray, surface: jnp.ndarray, time: jnp.ndarray, static: jnp.ndarray
    ) -> tuple[jnp.ndarray, jnp.ndarray]:
        """Fine fields over the region in physical units, from inputs on the network's grid."""
        residual_upper, residual_surface = self.predict_residual(upper, surface, time, static)
        return self.scaling.add_residual(
            self.crop(upper.astype(jnp.float32)),
            self.crop(surface.astype(jnp.float32)),
            residual_upper,
            residual_surface,
        )
