"""A convolutional classifier with soft attention pooling (Show, Attend and Tell, Xu et al.
2015): a CNN gives a feature map ``a_i`` over its ``h x w`` positions and a learned query ``s``
reads it,

    e_i = score(s, a_i),   alpha_i = softmax_i(e_i),   z = sum_i alpha_i a_i,   y = W z

with any attention preset as the score (``additive`` is the paper's MLP attention). ``alpha``,
heads averaged, is the attention map ``[B, h, w]``. ``AttentionPool`` (pooling by multi-head
attention, Lee et al. 2019) is also the ViT's ``map`` head.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.core import FrozenDict

from attn_research.attention import MultiHeadAttention, Spec, resolve
from attn_research.models import fields, maps

# The pooling's one query.
PROBE = maps.Tokens(("probe",))


class AttentionPool(nn.Module):
    """``x [B, *positions, F]`` -> ``[B, F]``: a learned probe attends over all positions (its
    layer sows ``attention_weights [B, H, 1, T]`` with ``sow_weights``)."""

    num_heads: int
    attention: Spec = resolve("dot_product")
    dtype: Any = jnp.float32
    sow_weights: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        batch, features = x.shape[0], x.shape[-1]
        x_BTF = x.reshape(batch, -1, features)
        probe = self.param("probe", nn.initializers.normal(0.02), (1, 1, features))
        probe_B1F = jnp.broadcast_to(probe, (batch, 1, features)).astype(self.dtype)
        attention = MultiHeadAttention(
            self.num_heads,
            attention=self.attention,
            dtype=self.dtype,
            sow_weights=self.sow_weights,
            name="attention",
        )
        return attention(probe_B1F, x_BTF)[:, 0]


class ConvStage(nn.Module):
    """Two ``3x3`` conv -> GroupNorm -> ReLU layers: ``[B, H, W, C] -> [B, H, W, features]``."""

    features: int
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for _ in range(2):
            x = nn.Conv(self.features, (3, 3), dtype=self.dtype)(x)
            x = nn.relu(nn.GroupNorm(num_groups=min(8, self.features), dtype=self.dtype)(x))
        return x


class AttentionCNN(fields.Attends, nn.Module):
    """Images ``[B, H, W, C]`` -> float32 logits ``[B, num_classes]``; a ``2x2`` max-pool
    follows each conv stage but the last; ``attention`` (with ``attention_options``) scores
    the positions."""

    num_classes: int
    stages: Sequence[int] = (32, 64, 128)
    num_heads: int = 1
    attention: str = "additive"
    attention_options: Mapping[str, Any] = FrozenDict()
    dropout_rate: float = 0.0
    dtype: Any = jnp.float32
    sow_weights: bool = False

    def __post_init__(self) -> None:
        _ = self.spec  # resolved and checked before anything is traced
        super().__post_init__()

    @nn.compact
    def __call__(self, images_BHWC: jax.Array, train: bool = False) -> jax.Array:
        x = images_BHWC.astype(self.dtype)
        for i, features in enumerate(self.stages):
            if i:
                x = nn.max_pool(x, (2, 2), strides=(2, 2))
            x = ConvStage(features, self.dtype, name=f"stage{i}")(x)
        z_BF = AttentionPool(self.num_heads, self.spec, self.dtype, self.sow_weights, name="pool")(
            x
        )
        z_BF = nn.Dropout(self.dropout_rate)(z_BF, deterministic=not train)
        return nn.Dense(self.num_classes, dtype=self.dtype, name="head")(z_BF).astype(jnp.float32)

    def attention_maps(self, params: Any, images_BHWC: jax.Array) -> list[maps.AttentionMap]:
        """The pooling's attention over the feature map: the ``readout`` (``models.maps``)."""
        _, state = self.clone(sow_weights=True).apply(
            {"params": params}, images_BHWC, mutable=["intermediates"]
        )
        (weights_BH1T,) = state["intermediates"]["pool"]["attention"]["attention_weights"]
        side = 2 ** (len(self.stages) - 1)
        grid = (images_BHWC.shape[1] // side, images_BHWC.shape[2] // side)
        return [maps.AttentionMap("readout", weights_BH1T, PROBE, maps.Tokens.image(grid))]
