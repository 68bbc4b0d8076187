"""Transformer encoder that classifies token sequences: the Long Range Arena's classifier
(Tay et al. 2020, after Vaswani et al. 2017).

    z_0 = [x_class;] E[t_1..t_T] + P             (P learned, or fixed sinusoids)
    z_L = Encoder(z_0), padding keys masked
    y   = W_head pool(z_L)                       (mean over real tokens, or the class token)

Image sequences lie on a pixel ``grid`` (for ``local_2d``), which a class token is off.
"""

from __future__ import annotations

from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax.core import FrozenDict

from attn_research.models import fields
from attn_research.models.encoder import classifier_encoder
from attn_research.models.scan import check_remat, check_unroll

POOLS = ("mean", "token")
POSITION_EMBEDDINGS = ("learned", "sincos")


def sincos_positions(length: int, width: int, temperature: float = 10_000.0) -> np.ndarray:
    """Fixed positions ``[length, width]`` (Vaswani et al. 2017): the first half of the channels
    ``sin(t w_k)``, the second ``cos(t w_k)``, ``w_k = temperature^(-k / (width/2))``."""
    if width % 2:
        raise ValueError(f"sincos positions need an even width, got {width}")
    omega = 1.0 / temperature ** (np.arange(width // 2) / (width // 2))
    angle = np.arange(length)[:, None] * omega
    return np.concatenate([np.sin(angle), np.cos(angle)], axis=1).astype(np.float32)


class SequenceClassifier(fields.Attends, nn.Module):
    """Token ids ``int [B, T]`` (``T <= max_len``) and lengths ``int [B]`` -> logits
    ``float32 [B, num_classes]``; other fields as in ``ViT``; ``grid`` None for text."""

    num_classes: int
    vocab_size: int
    max_len: int
    embed_dim: int = 64
    num_layers: int = 2
    num_heads: int = 4
    mlp_dim: int = 128
    dropout_rate: float = 0.0
    attention: str = "dot_product"
    attention_options: Mapping[str, Any] = FrozenDict()
    pool: str = "mean"
    position_embedding: str = "learned"
    grid: tuple[int, int] | None = None
    dtype: Any = jnp.float32
    remat: str = "none"
    scan_unroll: int = 1

    def __post_init__(self) -> None:
        fields.check_choice("pool", self.pool, POOLS)
        fields.check_choice("position_embedding", self.position_embedding, POSITION_EMBEDDINGS)
        check_remat(self.remat)
        check_unroll(self.scan_unroll, "scan_unroll")
        spec = self.spec
        tokens = self.max_len + (self.pool == "token")
        try:
            spec.positions.check(tokens, tokens, self.grid)
        except ValueError as error:
            raise ValueError(f"attention: {error}") from None
        if self.position_embedding == "sincos" and self.embed_dim % 2:
            raise ValueError(f"embed_dim: sincos positions need it even, got {self.embed_dim}")
        super().__post_init__()

    @nn.compact
    def __call__(
        self, tokens_BT: jax.Array, lengths_B: jax.Array, train: bool = False
    ) -> jax.Array:
        b, t = tokens_BT.shape
        if t != self.max_len:
            raise ValueError(f"sequences of {t} tokens; the model takes max_len={self.max_len}")
        x_BTD = nn.Embed(self.vocab_size, self.embed_dim, dtype=self.dtype, name="embedding")(
            tokens_BT
        )
        if self.position_embedding == "learned":
            pos_TD = self.param("pos_embedding", nn.initializers.normal(0.02), (t, self.embed_dim))
        else:
            pos_TD = jnp.asarray(sincos_positions(t, self.embed_dim))
        x_BTD = x_BTD + pos_TD.astype(self.dtype)
        real_BT = jnp.arange(t)[None, :] < lengths_B[:, None]
        if self.pool == "token":
            cls = self.param("cls", nn.initializers.zeros, (1, 1, self.embed_dim))
            cls_B1D = jnp.broadcast_to(cls, (b, 1, self.embed_dim)).astype(self.dtype)
            x_BTD = jnp.concatenate([cls_B1D, x_BTD], axis=1)
            real_BT = jnp.concatenate([jnp.ones((b, 1), bool), real_BT], axis=1)
        x_BTD = nn.Dropout(self.dropout_rate)(x_BTD, deterministic=not train)
        x_BTD = classifier_encoder(self, self.grid)(
            x_BTD, real_BT[:, None, None, :], deterministic=not train
        )
        if self.pool == "token":
            rep_BD = x_BTD[:, 0]
        else:
            weight_BT1 = real_BT[..., None].astype(x_BTD.dtype)
            rep_BD = (x_BTD * weight_BT1).sum(1) / jnp.maximum(weight_BT1.sum(1), 1.0)
        logits = nn.Dense(self.num_classes, dtype=self.dtype, name="head")(rep_BD)
        return logits.astype(jnp.float32)
