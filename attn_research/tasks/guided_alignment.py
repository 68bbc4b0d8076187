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

Step convention (``config.loss.alignment_shift`` k): row t + k of the attention is supervised
with the links of ``target_out[t]``'s word. k = 0: the attention computed while the decoder
predicts the word (its input is the token before), the one the evaluation's AER reads
(``tasks.translation_attention``). k = 1: the attention at the step where the word is the
decoder's input, so that its query has read the word it aligns; the Shift-Att read-out (Chen et
al. 2020, whose Shift-AET trains on these rows) reads it.

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


def shifted(targets_BTS: jax.Array, shift: int) -> jax.Array:
    """The targets moved ``shift`` rows later: row t + shift holds row t's links (the last
    ``shift`` rows' links fall off the end)."""
    padded = jnp.pad(targets_BTS, ((0, 0), (shift, 0), (0, 0)))
    return padded[:, : targets_BTS.shape[1]]


def alignment_loss(attention_BTS: jax.Array, targets_BTS: jax.Array) -> jax.Array:
    """The scalar cross-entropy ``L_align`` of the module doc (0 when nothing is linked)."""
    log_a = jnp.log(jnp.maximum(attention_BTS.astype(jnp.float32), MIN_WEIGHT))
    supervised = jnp.sum(targets_BTS.sum(-1) > 0)
    return -jnp.sum(targets_BTS * log_a) / jnp.maximum(supervised, 1)
