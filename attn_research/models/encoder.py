"""Pre-LayerNorm Transformer encoder (Vaswani et al. 2017; pre-LN as in ViT, Dosovitskiy et al. 2021).

    x <- x + Dropout(MultiHeadAttention_kind(LN(x)))
    x <- x + Dropout(MLP(LN(x))),   MLP(x) = W_2 GELU(W_1 x)

``Encoder`` stacks ``num_layers`` blocks with ``scan_layers`` (one traced layer, parameters
stacked on a leading axis), so compile time does not grow with depth. The
attention kind and its options come from the config; with ``sow_weights`` every layer's
weights land in 'intermediates' as ``[layers, batch..., H, Tq, Tk]``.
"""

from __future__ import annotations

from typing import Any, Mapping

import flax.linen as nn
import jax.numpy as jnp
from flax.core import FrozenDict

from attn_research.attention import MultiHeadAttention, resolve
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
    attention: str = "dot_product"
    attention_options: Mapping[str, Any] = FrozenDict()
    dropout_rate: float = 0.0
    attention_dropout_rate: float = 0.0
    dtype: Any = None
    sow_weights: bool = False
    # The token grid (rows, cols) for attention on a grid (window_2d); None for sequences.
    grid: tuple[int, int] | None = None

    @nn.compact
    def __call__(self, x: Array, mask: Array | None, deterministic: bool) -> tuple[Array, None]:
        """Returns ``(x, None)``, the carry/output pair of ``scan_layers``.

        ``mask``: bool ``[batch, 1|H, T|1, T]``, True = may attend (e.g. key padding).
        """
        y = nn.LayerNorm(dtype=self.dtype, name="ln_attention")(x)
        y = MultiHeadAttention(
            num_heads=self.num_heads,
            attention=resolve(self.attention, self.attention_options),
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
    """``num_layers`` scanned ``EncoderBlock``s and a final LayerNorm.

    Attributes:
      block: keyword arguments of ``EncoderBlock``.
      remat: what the backward pass keeps of each layer (``scan.REMAT_POLICIES``).
      scan_unroll: layers per iteration of the scanned loop (``scan.scan_layers``' unroll).
    """

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
    """The ``Encoder`` named "encoder" of a classifier (``ViT``, ``SequenceClassifier``).

    Built from the fields those models share: num_layers, num_heads, mlp_dim, attention,
    attention_options, dropout_rate, dtype, remat and scan_unroll. Call it inside ``owner``'s
    compact ``__call__``, so that the encoder is ``owner``'s submodule.
    """
    block = dict(
        num_heads=owner.num_heads,
        mlp_dim=owner.mlp_dim,
        attention=owner.attention,
        attention_options=FrozenDict(owner.attention_options),
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
