"""Pre-LayerNorm Transformer encoder (Vaswani et al. 2017; pre-LN as in ViT, Dosovitskiy et al.
2021), its layers scanned:

    x <- x + Dropout(MultiHeadAttention(LN(x)))
    x <- x + Dropout(MLP(LN(x))),   MLP(x) = W_2 GELU(W_1 x)
"""

from __future__ import annotations

from typing import Any, Mapping

import flax.linen as nn
import jax.numpy as jnp

from attn_research.attention import MultiHeadAttention, Spec, resolve
from attn_research.models.scan import scan_layers

Array = jnp.ndarray


class Mlp(nn.Module):
    """``W_2 GELU(W_1 x)`` with dropout after each layer; ``[..., F] -> [..., F]``."""

    hidden: int
    dropout_rate: float = 0.0
    dtype: Any = None

    @nn.compact
    def __call__(self, x: Array, deterministic: bool) -> Array:
        y = nn.Dense(self.hidden, dtype=self.dtype, name="fc1")(x)
        y = nn.Dropout(self.dropout_rate)(nn.gelu(y), deterministic=deterministic)
        y = nn.Dense(x.shape[-1], dtype=self.dtype, name="fc2")(y)
        return nn.Dropout(self.dropout_rate)(y, deterministic=deterministic)


class EncoderBlock(nn.Module):
    """One pre-LN block: ``[batch, T, F] -> [batch, T, F]``."""

    num_heads: int
    mlp_dim: int
    attention: Spec = resolve("dot_product")
    dropout_rate: float = 0.0
    attention_dropout_rate: float = 0.0
    dtype: Any = None
    sow_weights: bool = False
    # The token grid (rows, cols) for attention on a grid (window_2d); None for sequences.
    grid: tuple[int, int] | None = None

    @nn.compact
    def __call__(self, x: Array, mask: Array | None, deterministic: bool) -> tuple[Array, None]:
        """``mask``: bool ``[batch, 1|H, T|1, T]``, True = may attend; returns ``(x, None)``."""
        y = nn.LayerNorm(dtype=self.dtype, name="ln_attention")(x)
        y = MultiHeadAttention(
            num_heads=self.num_heads,
            attention=self.attention,
            dropout_rate=self.attention_dropout_rate,
            dtype=self.dtype,
            sow_weights=self.sow_weights,
            name="attention",
        )(y, mask=mask, grid=self.grid, deterministic=deterministic)
        x = x + nn.Dropout(self.dropout_rate)(y, deterministic=deterministic)
        y = nn.LayerNorm(dtype=self.dtype, name="ln_mlp")(x)
        return x + Mlp(self.mlp_dim, self.dropout_rate, self.dtype, name="mlp")(
            y, deterministic
        ), None


class Encoder(nn.Module):
    """``num_layers`` scanned ``EncoderBlock``s (``block``: their arguments) and a final
    LayerNorm; sown weights are ``[layers, batch..., H, Tq, Tk]``."""

    num_layers: int
    block: Mapping[str, Any]
    dtype: Any = None
    remat: str = "none"
    scan_unroll: int = 1

    @nn.compact
    def __call__(self, x: Array, mask: Array | None = None, *, deterministic: bool = True) -> Array:
        """``x [batch, T, F]`` -> ``[batch, T, F]``."""
        stack = scan_layers(
            EncoderBlock,
            self.num_layers,
            remat=self.remat,
            unroll=self.scan_unroll,
            static_args=(2,),
            name="layers",
            **self.block,
            dtype=self.dtype,
        )
        x, _ = stack(x, mask, deterministic)
        return nn.LayerNorm(dtype=self.dtype, name="ln_final")(x)


def classifier_encoder(
    owner: nn.Module, grid: tuple[int, int] | None, sow_weights: bool = False
) -> Encoder:
    """The ``Encoder`` named "encoder" of a classifier (``ViT``, ``SequenceClassifier``) from
    the fields they share; call it inside ``owner``'s compact ``__call__``."""
    block = dict(
        num_heads=owner.num_heads,
        mlp_dim=owner.mlp_dim,
        attention=owner.spec,
        grid=grid,
        dropout_rate=owner.dropout_rate,
        sow_weights=sow_weights,
    )
    return Encoder(
        owner.num_layers,
        block,
        dtype=owner.dtype,
        remat=owner.remat,
        scan_unroll=owner.scan_unroll,
        name="encoder",
    )
