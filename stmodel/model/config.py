"""Configuration of the 3D Earth-Specific Transformer: one frozen dataclass and named presets."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from stmodel.model.noise_field import N_FIELD_COEFFICIENTS

DTYPES = ("float32", "bfloat16")
# ModelConfig.remat: False (store every activation for the backward pass), True (per-block
# checkpointing: keep each block's input, recompute the rest), or the name of a policy that
# also keeps some of the block's intermediates (see stmodel.model.transformer_block).
REMAT_POLICIES = ("dots", "dots_no_batch")
ATTENTIONS = ("auto", "tuned", "fused")  # see stmodel.model.window_attention
# ModelConfig.noise_kind: where a stochastic model's noise enters (see stmodel.model.noise_field).
NOISE_KINDS = ("global", "global+field")


@dataclasses.dataclass(frozen=True)
class BackboneConfig:
    """The encoder/decoder's hyper-parameters and the (pressure, lat, lon) token grid of its
    fine stages; every network built around it derives one from its own config."""

    token_grid: tuple[int, int, int]
    dim: int
    depths: tuple[int, int, int, int]
    heads: tuple[int, int, int, int]
    window: tuple[int, int, int]
    mlp_ratio: float
    post_norm: bool
    layer_norm_epsilon: float
    attention: str = "auto"  # code path of the window attention, not a parameter
    # Width of the noise embedding that conditions the layer norms; 0: no conditioning.
    noise_embedding_dim: int = 0

    @property
    def coarse_token_grid(self) -> tuple[int, int, int]:
        """After 2 x 2 merging in latitude and longitude (odd counts rounded up)."""
        pressure, lat, lon = self.token_grid
        return (pressure, -(-lat // 2), -(-lon // 2))

    @property
    def stage_dims(self) -> tuple[int, int, int, int]:
        return (self.dim, 2 * self.dim, 2 * self.dim, self.dim)

    @classmethod
    def of(cls, config: Any) -> BackboneConfig:
        """The backbone of a network's config: its token grid and the fields of this class."""
        fields = dataclasses.fields(cls)
        # A field the network's config lacks (the downscaling network's attention) keeps
        # the backbone's default.
        return cls(**{f.name: getattr(config, f.name, f.default) for f in fields})


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Shape and hyper-parameters of one Pangu-style network.

    Axes follow the array layout of :mod:`stmodel.data.layout`: grid is
    (lat, lon); patch and window are (pressure, lat, lon), pressure counted in
    levels for the patch and in tokens for the window. attention chooses how window
    attention is computed, not the parameters: "tuned" (written out, fastest on CPU),
    "fused" (jax.nn.dot_product_attention, cuDNN's fused kernel on GPUs in bfloat16)
    or "auto" (tuned on CPU, fused on GPU and TPU).

    noise_dim > 0 makes the network stochastic (FGN, Alet et al. 2025; AIFS-ENS, Lang et al.
    2024): every call takes a Gaussian vector per sample that conditions every layer norm
    (stmodel.model.conditional_norm). noise_dim = 0 is the deterministic network, its
    parameter tree unchanged. noise_kind "global+field" also adds a smooth random field to
    the inputs (stmodel.model.noise_field), drawn from extra entries of the same vector:
    the network then takes noise_input_dim values per sample.
    """

    grid: tuple[int, int] = (32, 64)
    n_levels: int = 13
    n_upper_vars: int = 5
    n_surface_vars: int = 4
    n_constant_fields: int = 3
    patch: tuple[int, int, int] = (2, 4, 4)
    dim: int = 192
    depths: tuple[int, int, int, int] = (2, 6, 6, 2)
    heads: tuple[int, int, int, int] = (6, 12, 12, 6)
    window: tuple[int, int, int] = (2, 6, 12)
    mlp_ratio: float = 4.0
    drop_path: float = 0.2
    post_norm: bool = True
    dtype: str = "float32"
    remat: Any = False  # False, True, or one of REMAT_POLICIES (Any: TOML coerces no unions)
    layer_norm_epsilon: float = 1e-5
    attention: str = "auto"
    noise_dim: int = 0  # Gaussian noise values per sample and step; 0: deterministic
    noise_kind: str = "global"  # one of NOISE_KINDS

    def __post_init__(self):
        # Accept lists (from JSON or argparse) but store tuples, so the config stays hashable.
        for name in ("grid", "patch", "depths", "heads", "window"):
            object.__setattr__(self, name, tuple(int(v) for v in getattr(self, name)))
        expected_lengths = {"grid": 2, "patch": 3, "depths": 4, "heads": 4, "window": 3}
        for name, length in expected_lengths.items():
            value = getattr(self, name)
            if len(value) != length:
                raise ValueError(f"ModelConfig.{name} needs {length} values, got {value}")
            if any(v < 1 for v in value):
                raise ValueError(f"ModelConfig.{name} must be positive, got {value}")
        for name in ("n_levels", "n_upper_vars", "n_surface_vars", "dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"ModelConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.n_constant_fields < 0:
            raise ValueError(
                f"ModelConfig.n_constant_fields must be >= 0, got {self.n_constant_fields}"
            )
        if self.dtype not in DTYPES:
            raise ValueError(f"ModelConfig.dtype must be one of {DTYPES}, got {self.dtype!r}")
        if not isinstance(self.remat, bool) and self.remat not in REMAT_POLICIES:
            raise ValueError(
                f"ModelConfig.remat must be true, false or one of {REMAT_POLICIES}, "
                f"got {self.remat!r}"
            )
        if self.attention not in ATTENTIONS:
            raise ValueError(
                f"ModelConfig.attention must be one of {ATTENTIONS}, got {self.attention!r}"
            )
        if isinstance(self.noise_dim, bool) or not isinstance(self.noise_dim, int):
            raise ValueError(
                f"ModelConfig.noise_dim must be a whole number, got {self.noise_dim!r}"
            )
        if self.noise_dim < 0:
            raise ValueError(
                f"ModelConfig.noise_dim must be >= 0 (0: deterministic), got {self.noise_dim}"
            )
        if self.noise_kind not in NOISE_KINDS:
            raise ValueError(
                f"ModelConfig.noise_kind must be one of {NOISE_KINDS}, got {self.noise_kind!r}"
            )
        if self.noise_kind != "global" and self.noise_dim == 0:
            raise ValueError(
                f"ModelConfig.noise_kind {self.noise_kind!r} needs noise_dim > 0 "
                "(the field's amplitude is learned beside the conditioned norms)"
            )
        if not 0.0 <= self.drop_path < 1.0:
            raise ValueError(f"ModelConfig.drop_path must be in [0, 1), got {self.drop_path}")
        for stage, (heads, dim) in enumerate(zip(self.heads, self.stage_dims)):
            if dim % heads:
                raise ValueError(
                    f"stage {stage + 1} width {dim} is not divisible by its "
                    f"{heads} heads (ModelConfig.dim={self.dim}, heads={self.heads})"
                )

    # --- derived shapes -------------------------------------------------------------------

    @property
    def backbone(self) -> BackboneConfig:
        return BackboneConfig.of(self)

    @property
    def stage_dims(self) -> tuple[int, int, int, int]:
        """Channel width of the four stages: C, 2C, 2C, C."""
        return (self.dim, 2 * self.dim, 2 * self.dim, self.dim)

    @property
    def noise_embedding_dim(self) -> int:
        """Width of the embedded noise vector the layer norms are conditioned on (0: none)."""
        return self.dim if self.noise_dim else 0

    @property
    def noise_input_dim(self) -> int:
        """Noise values the network takes per sample: noise_dim for the layer norms, then
        (noise_kind "global+field") the coefficients of the input noise field."""
        if self.noise_kind == "global+field":
            return self.noise_dim + N_FIELD_COEFFICIENTS
        return self.noise_dim

    @property
    def n_upper_tokens(self) -> int:
        """Pressure tokens of the upper-air fields (levels padded to the patch)."""
        return math.ceil(self.n_levels / self.patch[0])

    @property
    def token_grid(self) -> tuple[int, int, int]:
        """(pressure, lat, lon) tokens of stages 1 and 4: upper-air tokens, one surface level."""
        return (
            self.n_upper_tokens + 1,
            math.ceil(self.grid[0] / self.patch[1]),
            math.ceil(self.grid[1] / self.patch[2]),
        )

    @property
    def coarse_token_grid(self) -> tuple[int, int, int]:
        """(pressure, lat, lon) tokens of stages 2 and 3, after 2 x 2 merging in lat/lon."""
        pressure, lat, lon = self.token_grid
        return (pressure, math.ceil(lat / 2), math.ceil(lon / 2))

    # --- presets and serialisation --------------------------------------------------------

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> ModelConfig:
        """A named configuration, with any field overridden by keyword."""
        if name not in PRESETS:
            raise ValueError(f"unknown model preset {name!r}; choose one of {sorted(PRESETS)}")
        fields = {**PRESETS[name], **overrides}
        return cls(**fields)

    def to_dict(self) -> dict:
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown ModelConfig fields {unknown}")
        return cls(**d)


PRESETS: dict[str, dict[str, Any]] = {
    # Seconds on a laptop CPU; for tests. Windows tile the 32 x 64 token grids exactly.
    "tiny": dict(dim=32, depths=(2, 2, 2, 2), heads=(2, 4, 4, 2), window=(2, 4, 8), drop_path=0.0),
    # The CPU default at 5.625 deg (32 x 64): half the paper's width, and smaller windows
    # that tile the (8, 8, 16) and (8, 4, 8) token grids exactly.
    "small": dict(dim=96, heads=(3, 6, 6, 3), window=(2, 4, 8)),
    # The paper's network at 5.625 deg: the configuration of the PyTorch reference timings.
    "base": dict(),
    # The paper's 0.25 deg configuration (Bi et al. 2023).
    "pangu": dict(grid=(721, 1440)),
}
