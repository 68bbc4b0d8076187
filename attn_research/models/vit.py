"""Vision Transformer (Dosovitskiy et al. 2021, "An image is worth 16x16 words").

    z_0 = [x_class; r_1; ...; r_R; x_p^1 E + E_pos^1; ...; x_p^N E + E_pos^N]
    z_L = Encoder(z_0)
    y   = W_head pool(z_L)

``stem``: 3 x 3 stride-1 convolutions before the patches (after Xiao et al. 2021's early
convolutions; stride 1 keeps the patch grid). ``pool``: the class token (``token``), the mean
of the patches (``gap``) or an attention probe (``map``, Lee et al. 2019). Registers (Darcet et
al. 2023) are learned tokens that every layer may attend to, discarded at the output. Patches
lie on the ``(H/p) x (W/p)`` grid; ``local_2d`` with a class token or registers is a ValueError.
"""

from __future__ import annotations

from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax.core import FrozenDict

from attn_research.models import fields, maps
from attn_research.models.attention_cnn import PROBE, AttentionPool
from attn_research.models.encoder import classifier_encoder
from attn_research.models.scan import check_remat, check_unroll

POOLS = ("token", "gap", "map")
POSITION_EMBEDDINGS = ("learned", "sincos2d")


def patchify(images_BHWC: jax.Array, patch: int) -> jax.Array:
    """``[B, H, W, C]`` -> ``[B, (H/p)(W/p), p*p*C]``, patches row-major, pixels row-major."""
    b, h, w, c = images_BHWC.shape
    if h % patch or w % patch:
        raise ValueError(f"image size {h}x{w} is not divisible by the patch size {patch}")
    x = images_BHWC.reshape(b, h // patch, patch, w // patch, patch, c)
    return x.transpose(0, 1, 3, 2, 4, 5).reshape(b, (h // patch) * (w // patch), patch * patch * c)


def unpatchify(patches_BNP: jax.Array, grid: tuple[int, int], channels: int) -> jax.Array:
    """Inverse of ``patchify``: ``[B, rows*cols, p*p*C]`` -> ``[B, rows*p, cols*p, C]``."""
    rows, cols = grid
    b, n, size = patches_BNP.shape
    patch = int(round((size // channels) ** 0.5))
    if n != rows * cols or patch * patch * channels != size:
        raise ValueError(
            f"patches {patches_BNP.shape} do not fit grid {grid} x {channels} channels"
        )
    x = patches_BNP.reshape(b, rows, cols, patch, patch, channels).transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(b, rows * patch, cols * patch, channels)


def sincos_2d_positions(
    rows: int, cols: int, width: int, temperature: float = 10_000.0
) -> np.ndarray:
    """Fixed 2-D sine-cosine positions ``[rows*cols, width]`` (Chen et al. 2021, MoCo v3): a
    quarter of the channels each ``sin(r w_k)``, ``cos(r w_k)``, ``sin(c w_k)``, ``cos(c w_k)``,
    ``w_k = temperature^(-k / (width/4 - 1))``."""
    if width % 4:
        raise ValueError(f"sincos2d positions need a width divisible by 4, got {width}")
    r, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    omega = 1.0 / temperature ** (np.arange(width // 4) / max(width // 4 - 1, 1))
    r, c = r.reshape(-1, 1) * omega, c.reshape(-1, 1) * omega
    return np.concatenate([np.sin(r), np.cos(r), np.sin(c), np.cos(c)], axis=1).astype(np.float32)


class ViT(fields.Attends, nn.Module):
    """Images ``[B, H, W, C]`` (float, normalized) -> float32 logits ``[B, num_classes]``.

    Attributes:
      patch: patch side p (H and W multiples of it); stem: channels of the conv stem (() none).
      attention, attention_options: the encoder's preset and its options.
      num_registers: register tokens R (0: the original ViT).
      sow_weights: sow every layer's attention ``[layers, B, H, T, T]`` (and the MAP probe's).
    """

    num_classes: int
    patch: int = 4
    stem: tuple[int, ...] = ()
    embed_dim: int = 64
    num_layers: int = 4
    num_heads: int = 4
    mlp_dim: int = 128
    dropout_rate: float = 0.0
    attention: str = "dot_product"
    attention_options: Mapping[str, Any] = FrozenDict()
    pool: str = "token"
    num_registers: int = 0
    position_embedding: str = "learned"
    dtype: Any = jnp.float32
    sow_weights: bool = False
    remat: str = "none"
    scan_unroll: int = 1

    def __post_init__(self) -> None:
        fields.check_choice("pool", self.pool, POOLS)
        fields.check_choice("position_embedding", self.position_embedding, POSITION_EMBEDDINGS)
        if any(channels < 1 for channels in self.stem):
            raise ValueError(f"stem: channels must be >= 1, got {self.stem}")
        if self.num_registers < 0:
            raise ValueError(f"num_registers: must be >= 0, got {self.num_registers}")
        check_remat(self.remat)
        check_unroll(self.scan_unroll, "scan_unroll")
        _ = self.spec  # resolved and checked before anything is traced
        super().__post_init__()

    @nn.compact
    def __call__(self, images_BHWC: jax.Array, train: bool = False) -> jax.Array:
        _, h, w, _ = images_BHWC.shape
        grid = (h // self.patch, w // self.patch)
        x_BHWC = images_BHWC.astype(self.dtype)
        for i, channels in enumerate(self.stem):
            x_BHWC = nn.relu(
                nn.Conv(channels, (3, 3), padding="SAME", dtype=self.dtype, name=f"stem{i}")(x_BHWC)
            )
        x_BND = nn.Dense(self.embed_dim, dtype=self.dtype, name="embedding")(
            patchify(x_BHWC, self.patch)
        )
        if self.position_embedding == "learned":
            pos_ND = self.param(
                "pos_embedding", nn.initializers.normal(0.02), (grid[0] * grid[1], self.embed_dim)
            )
        else:
            pos_ND = jnp.asarray(sincos_2d_positions(*grid, self.embed_dim))
        x_BND = x_BND + pos_ND.astype(self.dtype)
        prefix = []
        if self.pool == "token":
            prefix.append(self.param("cls", nn.initializers.zeros, (1, 1, self.embed_dim))[0])
        if self.num_registers:
            prefix.append(
                self.param(
                    "registers", nn.initializers.normal(0.02), (self.num_registers, self.embed_dim)
                )
            )
        if prefix:
            prefix_PD = jnp.concatenate(prefix).astype(self.dtype)
            prefix_BPD = jnp.broadcast_to(prefix_PD, (x_BND.shape[0], *prefix_PD.shape))
            x_BND = jnp.concatenate([prefix_BPD, x_BND], axis=1)
        x_BND = nn.Dropout(self.dropout_rate)(x_BND, deterministic=not train)
        x_BND = classifier_encoder(self, grid, self.sow_weights)(x_BND, deterministic=not train)
        patches_BND = x_BND[:, len(self.prefix_roles()) :]
        if self.pool == "token":
            rep_BD = x_BND[:, 0]
        elif self.pool == "gap":
            rep_BD = patches_BND.mean(axis=1)
        else:
            rep_BD = AttentionPool(
                self.num_heads, dtype=self.dtype, sow_weights=self.sow_weights, name="map"
            )(patches_BND)
        logits = nn.Dense(
            self.num_classes, dtype=self.dtype, kernel_init=nn.initializers.zeros, name="head"
        )(rep_BD)
        return logits.astype(jnp.float32)

    def prefix_roles(self) -> tuple[str, ...]:
        """The roles of the tokens before the patches: the class token, then the registers."""
        return ("class",) * (self.pool == "token") + ("register",) * self.num_registers

    def attention_maps(self, params: Any, images_BHWC: jax.Array) -> list[maps.AttentionMap]:
        """Every encoder layer's self-attention, then the ``readout`` (``models.maps``)."""
        _, state = self.clone(sow_weights=True).apply(
            {"params": params}, images_BHWC, mutable=["intermediates"]
        )
        sown = state["intermediates"]
        (weights_LBHTT,) = sown["encoder"]["layers"]["attention"]["attention_weights"]
        grid = (images_BHWC.shape[1] // self.patch, images_BHWC.shape[2] // self.patch)
        prefix = self.prefix_roles()
        tokens = maps.Tokens.image(grid, prefix=prefix)
        batch, count, skip = images_BHWC.shape[0], len(tokens), len(prefix)
        if self.pool == "token":
            readout = jnp.zeros((batch, 1, 1, count)).at[..., 0].set(1.0)
        elif self.pool == "gap":
            readout = jnp.zeros((batch, 1, 1, count)).at[..., skip:].set(1.0 / (count - skip))
        else:
            (probe_BH1N,) = sown["map"]["attention"]["attention_weights"]
            readout = jnp.pad(probe_BH1N, ((0, 0), (0, 0), (0, 0), (skip, 0)))
        return maps.layer_maps("encoder", weights_LBHTT, tokens, tokens) + [
            maps.AttentionMap("readout", readout, PROBE, tokens)
        ]
