"""Pangu's 4-stage window-attention encoder/decoder, held by the global model and by
the downscaling network: 2 stages at the token grid and 2 at half its latitude and
longitude, with down/up-sampling between them and a skip connection across."""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp
from flax import nnx

from stmodel.model.config import BackboneConfig
from stmodel.model.precision import DtypePolicy
from stmodel.model.resampling import DownSample, UpSample
from stmodel.model.transformer_block import Stage


class EncoderDecoder(nnx.Module):
    """The four stages with down- and up-sampling between them and the skip connection.

    Networks hold one as their ``backbone`` attribute, created between their embedding
    and their head, so its parameters are named ``backbone.encoder_fine...`` in every
    network: pretrained stages transfer, and freeze, by that prefix.
    """

    def __init__(
        self,
        config: BackboneConfig,
        *,
        drop_path_rates: Sequence[Sequence[float]],
        remat: bool,
        policy: DtypePolicy,
        rngs: nnx.Rngs,
    ):
        fine_grid, coarse_grid = config.token_grid, config.coarse_token_grid
        grids = (fine_grid, coarse_grid, coarse_grid, fine_grid)

        def stage(index: int) -> Stage:
            return Stage(
                config.stage_dims[index],
                config.heads[index],
                grids[index],
                config.depths[index],
                window=config.window,
                drop_path_rates=list(drop_path_rates[index]),
                mlp_ratio=config.mlp_ratio,
                post_norm=config.post_norm,
                layer_norm_epsilon=config.layer_norm_epsilon,
                remat=remat,
                policy=policy,
                rngs=rngs,
                attention=config.attention,
                noise_embedding_dim=config.noise_embedding_dim,
            )

        self.encoder_fine = stage(0)
        self.downsample = DownSample(
            config.dim,
            fine_grid,
            layer_norm_epsilon=config.layer_norm_epsilon,
            policy=policy,
            rngs=rngs,
            noise_embedding_dim=config.noise_embedding_dim,
        )
        self.encoder_coarse = stage(1)
        self.decoder_coarse = stage(2)
        self.upsample = UpSample(
            2 * config.dim,
            config.dim,
            fine_grid,
            layer_norm_epsilon=config.layer_norm_epsilon,
            policy=policy,
            rngs=rngs,
            noise_embedding_dim=config.noise_embedding_dim,
        )
        self.decoder_fine = stage(3)

    def __call__(
        self,
        x: jnp.ndarray,
        *,
        deterministic: bool = True,
        noise_embedding: jnp.ndarray | None = None,
    ) -> jnp.ndarray:
        """Embedded tokens [batch, pressure, lat, lon, C] -> [batch, pressure, lat, lon, 2C]:
        the decoder's output beside the skip connection (what the head sees).

        noise_embedding [batch, width] conditions every layer norm (a backbone built with
        config.noise_embedding_dim > 0); None is the deterministic network.
        """
        options = dict(deterministic=deterministic, noise_embedding=noise_embedding)
        x = self.encoder_fine(x, **options)
        skip = x
        x = self.downsample(x, noise_embedding)  # [batch, pressure, lat/2, lon/2, 2C]
        x = self.encoder_coarse(x, **options)
        x = self.decoder_coarse(x, **options)
        x = self.upsample(x, noise_embedding)  # [batch, pressure, lat, lon, C]
        x = self.decoder_fine(x, **options)
        return jnp.concatenate([x, skip], axis=-1)  # [batch, pressure, lat, lon, 2C]
