"""Guided alignment: a loss that teaches one cross-attention a statistical aligner's links.

Chen et al. 2016 ("Guided alignment training for topic-aware neural machine translation") add
to the translation loss a cross-entropy between the attention and an aligner's alignment; Garg
et al. 2019 ("Jointly learning to align and translate with Transformer models", fairseq's
``--alignment-layer`` and ``--alignment-heads``) supervise the average of the first heads of one
Transformer decoder layer with it, each target row of the alignment matrix normalised. Here,

    L_align = - sum_{b, t} sum_s p[b, t, s] log a[b, t, s] / |{(b, t): sum_s p[b, t, s] > 0}|,

with ``a [B, T, S]`` the chosen attention (``config.loss.alignment_layer`` of the family's
``logits_and_attention``, heads ``0 .. alignment_heads - 1`` averaged) and ``p [B, T, S]`` the
batch's ``alignment`` targets (``data.translation_pipeline``: for target piece t, uniform over
the source pieces of the source words linked to t's word). Target positions without a link
contribute nothing and are not counted.

Step convention: row t of the attention is the one computed while the decoder predicts
``target_out[t]`` (its input is ``target_in[t]``, the token before), and it is supervised with
the links of ``target_out[t]``'s word. This is the attention that the evaluation's AER reads
(``tasks.translation_attention``). Shift-Att (Chen et al. 2020) reads a word's alignment one
step later, where the word is the decoder's input; that is a read-out, not this loss.

A weight the softmax cannot reach (a linked source piece outside a local attention's window)
is clamped at `MIN_WEIGHT` before the logarithm: the loss stays finite and that term has no
gradient.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

MIN_WEIGHT = 1e-9


def supervised_attention(weights_LBHTS: jax.Array, layer: int, heads: int) -> jax.Array:
    """``[B, T, S]`` float32: layer `layer`'s first `heads` heads, averaged."""
    return weights_LBHTS[layer, :, :heads].astype(jnp.float32).mean(axis=1)


def alignment_loss(attention_BTS: jax.Array, targets_BTS: jax.Array) -> jax.Array:
    """The scalar cross-entropy ``L_align`` of the module doc (0 when nothing is linked)."""
    log_a = jnp.log(jnp.maximum(attention_BTS.astype(jnp.float32), MIN_WEIGHT))
    supervised = jnp.sum(targets_BTS.sum(-1) > 0)
    return -jnp.sum(targets_BTS * log_a) / jnp.maximum(supervised, 1)
