"""The train-step benchmark's models: a token Transformer, and flax's attention as a peer.

``flax_attention`` turns any of our models into its flax-attention peer (the same model with
``flax.linen.MultiHeadDotProductAttention`` in every attention layer) without a hook in the
model's API: it is a flax method interceptor (``nn.intercept_methods``).
"""

from __future__ import annotations

import inspect
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from attn_research.attention import MultiHeadAttention, resolve
from attn_research.models.encoder import Encoder


def flax_attention(next_fun, args, kwargs, context):
    """A flax method interceptor: every ``MultiHeadAttention`` call runs
    ``flax.linen.MultiHeadDotProductAttention`` instead, as a child of that layer.

    Under ``nn.intercept_methods(flax_attention)`` a model is its own flax-attention peer: the
    same sizes, MLPs and scanned layers, with flax's attention in every layer (parameters at
    ``<layer>/MultiHeadDotProductAttention_0/{query,key,value,out}``).
    """
    layer = context.module
    if not isinstance(layer, MultiHeadAttention) or context.method_name != "__call__":
        return next_fun(*args, **kwargs)
    call = inspect.signature(MultiHeadAttention.__call__).bind(layer, *args, **kwargs)
    call.apply_defaults()
    a = call.arguments
    if (
        layer.attention != resolve("dot_product")
        or layer.decode
        or a["query_positions"] is not None
        or a["bias"] is not None
    ):
        raise ValueError("the flax peer has only global dot-product attention, for training")
    mask = a["mask"]
    if a["causal"]:
        mask = nn.combine_masks(mask, nn.make_causal_mask(a["inputs_q"][..., 0]))
    inputs_kv = a["inputs_q"] if a["inputs_kv"] is None else a["inputs_kv"]
    return nn.MultiHeadDotProductAttention(
        layer.num_heads,
        dtype=layer.dtype,
        dropout_rate=layer.dropout_rate,
        deterministic=a["deterministic"],
        parent=layer,
    )(a["inputs_q"], inputs_kv, mask=mask)


class TokenTransformer(nn.Module):
    """Tokens ``[B, T]`` -> logits ``[B, T, vocab]``: embedding, scanned pre-LN encoder, head."""

    vocab: int
    embed_dim: int
    num_layers: int
    num_heads: int
    mlp_dim: int
    dtype: Any
    remat: str = "none"
    scan_unroll: int = 1

    @nn.compact
    def __call__(self, tokens_BT: jax.Array, train: bool = True) -> jax.Array:
        x = nn.Embed(self.vocab, self.embed_dim, dtype=self.dtype)(tokens_BT)
        block = dict(num_heads=self.num_heads, mlp_dim=self.mlp_dim)
        x = Encoder(
            self.num_layers, block, dtype=self.dtype, remat=self.remat, scan_unroll=self.scan_unroll
        )(x, deterministic=not train)
        return nn.Dense(self.vocab, dtype=self.dtype)(x).astype(jnp.float32)
