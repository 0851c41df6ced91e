"""The 3D Earth-Specific Transformer of Pangu-Weather (Bi et al. 2023) as a Flax NNX module.

One step of the raw network, in whatever normalised space its caller chooses:
(upper-air, surface, constant fields) -> (upper-air, surface) of the same shapes.
Normalisation and the residual formulation live in :mod:`stmodel.model.wrappers`.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from flax import nnx

from stmodel.model.conditional_norm import NoiseEmbedding
from stmodel.model.config import ModelConfig
from stmodel.model.encoder_decoder import EncoderDecoder
from stmodel.model.noise_field import InputNoiseField
from stmodel.model.patch_embedding import PatchEmbedding, PatchRecovery
from stmodel.model.precision import DtypePolicy


def drop_path_rates(
    config: ModelConfig,
) -> tuple[list[float], list[float], list[float], list[float]]:
    """Stochastic depth per block, rising from 0 to config.drop_path with depth from the grid.

    As in the paper's code: the encoder rates rise over stages 1 and 2; the decoder
    mirrors them (stage 3 gets the deep end, stage 4 the shallow end).
    """
    d1, d2, d3, d4 = config.depths
    encoder = np.linspace(0.0, config.drop_path, d1 + d2).tolist()
    decoder = np.linspace(0.0, config.drop_path, d4 + d3).tolist()
    return encoder[:d1], encoder[d1:], decoder[d4:], decoder[:d4]


class EarthSpecificTransformer(nnx.Module):
    """Patch embedding, a 4-stage window-attention encoder/decoder, and patch recovery.

    With config.noise_dim > 0 the network is stochastic: each call takes a noise vector
    per sample, embedded once (``noise_embedding``) and conditioning every layer norm
    (stmodel.model.conditional_norm); noise_kind "global+field" also adds a smooth field
    to the inputs (``noise_field``, stmodel.model.noise_field). Both start as the
    identity, so a deterministic network's parameters give its output exactly.
    """

    def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs):
        self.config = config
        policy = DtypePolicy.from_name(config.dtype)
        self.policy = policy
        self.patch_embedding = PatchEmbedding(config, policy=policy, rngs=rngs)
        self.backbone = EncoderDecoder(
            config.backbone,
            drop_path_rates=drop_path_rates(config),
            remat=config.remat,
            policy=policy,
            rngs=rngs,
        )
        # The skip connection doubles the width seen by patch recovery.
        self.patch_recovery = PatchRecovery(2 * config.dim, config, policy=policy, rngs=rngs)
        # Created last, so that the layers above draw the same initial values from a seed
        # as in a deterministic network (the norms' modulations draw nothing).
        if config.noise_dim:
            self.noise_embedding = NoiseEmbedding(
                config.noise_dim, config.noise_embedding_dim, policy=policy, rngs=rngs
            )
        if config.noise_kind == "global+field":
            self.noise_field = InputNoiseField(
                config.n_levels, config.n_upper_vars, config.n_surface_vars
            )

    def check_noise(self, noise, batch: int) -> None:
        """Raise ValueError unless `noise` is what this network takes: None for a
        deterministic one, [batch, config.noise_input_dim] for a stochastic one."""
        c = self.config
        if not c.noise_dim:
            if noise is not None:
                raise ValueError(
                    "EarthSpecificTransformer: noise given to a deterministic network "
                    "(ModelConfig.noise_dim = 0); build it with noise_dim > 0 to use noise"
                )
            return
        if noise is None:
            raise ValueError(
                f"EarthSpecificTransformer: this network is stochastic (ModelConfig.noise_dim "
                f"= {c.noise_dim}) and needs noise [batch, {c.noise_input_dim}] on every call "
                "(see stmodel.model.noise.member_noise)"
            )
        if tuple(noise.shape) != (batch, c.noise_input_dim):
            raise ValueError(
                f"EarthSpecificTransformer: noise has shape {tuple(noise.shape)}, expected "
                f"[batch, noise_input_dim] = ({batch}, {c.noise_input_dim}) from the model "
                f"config (noise_dim={c.noise_dim}, noise_kind={c.noise_kind!r})"
            )

    def check_shapes(self, upper, surface, constants) -> None:
        """Raise ValueError naming the array whose shape does not match the config."""
        c = self.config
        lat, lon = c.grid
        expected = {
            "upper": (None, c.n_levels, lat, lon, c.n_upper_vars),
            "surface": (None, lat, lon, c.n_surface_vars),
            "constants": (lat, lon, c.n_constant_fields),
        }
        arrays = {"upper": upper, "surface": surface, "constants": constants}
        for name, shape in expected.items():
            actual = tuple(arrays[name].shape)
            if len(actual) != len(shape) or any(
                e is not None and e != a for e, a in zip(shape, actual)
            ):
                layout = {
                    "upper": "[batch, level, lat, lon, upper_var]",
                    "surface": "[batch, lat, lon, surface_var]",
                    "constants": "[lat, lon, constant]",
                }[name]
                raise ValueError(
                    f"EarthSpecificTransformer: {name} has shape {actual}, expected "
                    f"{layout} = {tuple('batch' if e is None else e for e in shape)} "
                    f"from the model config"
                )
        if upper.shape[0] != surface.shape[0]:
            raise ValueError(
                f"EarthSpecificTransformer: upper batch {upper.shape[0]} != "
                f"surface batch {surface.shape[0]}"
            )

    def __call__(
        self,
        upper: jnp.ndarray,
        surface: jnp.ndarray,
        constants: jnp.ndarray,
        *,
        noise: jnp.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[jnp.ndarray, jnp.ndarray]:
        """upper [batch, level, lat, lon, upper_var], surface [batch, lat, lon, surface_var],
        constants [lat, lon, constant] -> (upper, surface) of the input shapes, in the
        policy's output dtype (float32).

        noise: [batch, config.noise_input_dim] float32 standard normal values, one vector
        per sample (ensemble member) and step, shared over the globe; required when
        config.noise_dim > 0, refused otherwise. It is the forecast's only randomness:
        the same noise gives the same output.
        deterministic: no dropout or stochastic depth (inference and evaluation); False
        samples stochastic depth from the "dropout" RNG stream, when training. It has
        nothing to do with the noise.
        """
        self.check_shapes(upper, surface, constants)
        self.check_noise(noise, upper.shape[0])
        embedding = None
        if noise is not None:
            noise = noise.astype(jnp.float32)
            if self.config.noise_kind == "global+field":
                # In float32 before the cast: the inputs' own precision.
                field = noise[:, self.config.noise_dim :]  # [batch, N_FIELD_COEFFICIENTS]
                upper, surface = self.noise_field(upper, surface, field)
            noise = self.policy.cast_to_compute(noise[:, : self.config.noise_dim])
            embedding = self.noise_embedding(noise)  # [batch, noise_embedding_dim]
        upper, surface, constants = self.policy.cast_to_compute((upper, surface, constants))
        x = self.patch_embedding(upper, surface, constants)  # [batch, pressure, lat, lon, C]
        # [batch, pressure, lat, lon, 2C]
        x = self.backbone(x, deterministic=deterministic, noise_embedding=embedding)
        return self.policy.cast_to_output(self.patch_recovery(x))


def count_parameters(model: nnx.Module) -> dict[str, int]:
    """Parameter counts: total, and the Earth-specific position bias tables alone.

    Works on an abstract model (from ``nnx.eval_shape``) as well as a real one.
    """
    total = 0
    bias = 0
    for path, param in nnx.to_flat_state(nnx.state(model, nnx.Param)):
        size = int(np.prod(param.shape))
        total += size
        if "position_bias" in [str(p) for p in path]:
            bias += size
    return {"total": total, "position_bias": bias}


def abstract_model(config: ModelConfig) -> EarthSpecificTransformer:
    """The model with shapes only (no memory allocated): for parameter counts of big presets."""
    return nnx.eval_shape(lambda: EarthSpecificTransformer(config, rngs=nnx.Rngs(0)))
